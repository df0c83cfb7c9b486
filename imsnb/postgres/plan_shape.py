"""The shape of a plan: its scan and join nodes, with relation and index names, its cost and rows, and a short hash.

The hash is of the nodes only (no costs), so the same shape hashes the same on any run or server while `total_cost`
and `rows` move with the statistics: what `postgres.plan_change` compares across a window. HypoPG's hypothetical
indexes are named without their oid, so a plan with one hashes the same on every run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PlanShape", "plan_shape"]

SCAN_NODES = {
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Heap Scan",
    "Bitmap Index Scan",
    "Tid Scan",
    "Tid Range Scan",
    "Sample Scan",
    "Foreign Scan",
}
JOIN_NODES = {"Nested Loop", "Hash Join", "Merge Join"}
HYPOTHETICAL_OID = re.compile(r"^<\d+>")  # HypoPG names its indexes "<13556>btree_items_sku"; the oid varies
TEXT_NODES = 4  # nodes named in PlanShape.text before "+N more"


@dataclass
class PlanShape:
    """What a plan does, without its numbers: scan and join nodes in plan order; `hash` is of the nodes only, so the
    same shape hashes the same on any run or server while `total_cost` and `rows` move with the statistics."""

    nodes: list[str]
    total_cost: float
    rows: float
    indexes: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    hash: str = ""

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = shape_hash(self.nodes)

    @property
    def text(self) -> str:
        """'Seq Scan on items (cost 5411)'; a longer plan names its first nodes and counts the rest."""
        shown = self.nodes[:TEXT_NODES] or ["no scan"]
        more = f" +{len(self.nodes) - TEXT_NODES} more" if len(self.nodes) > TEXT_NODES else ""
        return f"{', '.join(shown)}{more} (cost {self.total_cost:.0f})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanShape:
        return cls(
            nodes=list(data.get("nodes") or []),
            total_cost=float(data.get("total_cost") or 0.0),
            rows=float(data.get("rows") or 0.0),
            indexes=list(data.get("indexes") or []),
            relations=list(data.get("relations") or []),
            hash=str(data.get("hash") or ""),
        )


def shape_hash(nodes: list[str]) -> str:
    return hashlib.sha256("\n".join(nodes).encode()).hexdigest()[:12]


def plan_shape(plan: dict[str, Any]) -> PlanShape:
    """The shape of an EXPLAIN (FORMAT JSON) plan: its top "Plan" dict (or the whole EXPLAIN output)."""
    if isinstance(plan, list):
        plan = plan[0]
    if "Plan" in plan and "Node Type" not in plan:
        plan = plan["Plan"]
    nodes: list[str] = []
    indexes: list[str] = []
    relations: list[str] = []
    for node in plan_nodes(plan):
        name = node_name(node)
        if name is None:
            continue
        nodes.append(name)
        index = node.get("Index Name")
        if index and _stable_index(index) not in indexes:
            indexes.append(_stable_index(index))
        relation = node.get("Relation Name")
        if relation and relation not in relations:
            relations.append(relation)
    return PlanShape(
        nodes=nodes,
        total_cost=float(plan.get("Total Cost") or 0.0),
        rows=float(plan.get("Plan Rows") or 0.0),
        indexes=indexes,
        relations=relations,
    )


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, depth first in plan order (init plans and subplans included)."""
    yield plan
    for child in plan.get("Plans") or []:
        yield from plan_nodes(child)


def node_name(node: dict[str, Any]) -> str | None:
    """A scan or join node as EXPLAIN's text format names it ('Index Scan using items_sku on items', 'Hash Left
    Join'); None for the nodes a shape leaves out (sorts, aggregates, limits...)."""
    kind = node.get("Node Type", "")
    if kind in SCAN_NODES:
        index = node.get("Index Name")
        relation = node.get("Relation Name")
        name = kind + (f" using {_stable_index(index)}" if index else "")
        return name + (f" on {relation}" if relation else "")
    if kind in JOIN_NODES:
        join = node.get("Join Type", "Inner")
        if join == "Inner":
            return kind
        return f"{kind} {join} Join" if kind == "Nested Loop" else f"{kind.removesuffix(' Join')} {join} Join"
    return None


def _stable_index(name: str) -> str:
    return HYPOTHETICAL_OID.sub("<hypothetical>", name)
