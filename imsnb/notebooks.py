"""The notebook catalogue: find a notebook by name, read its title, purpose and parameters cell.

Parameters are read from the notebook itself (the cell tagged `parameters`): each `name = literal  # help` line
declares a parameter whose type is the literal's type. Read with `ast`, never executed.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter

TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}


def notebooks_dir() -> Path:
    """IMSNB_NOTEBOOKS, else the repository's notebooks/ folder."""
    return Path(os.environ.get("IMSNB_NOTEBOOKS") or Path(__file__).resolve().parent.parent / "notebooks")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # bool, int, float, str or list
    default: Any
    help: str = ""

    @property
    def optional(self) -> bool:
        return self.default is None


@dataclass
class NotebookInfo:
    name: str
    path: Path
    title: str
    purpose: str
    parameters: dict[str, Parameter] = field(default_factory=dict)


def find_notebook(name: str) -> Path:
    """A notebook by name (`db_performance`) or by path to an .ipynb file."""
    if not isinstance(name, str) or not name.strip():
        raise BadParameter("no notebook named: give one of those `imsnb list` shows")
    candidate = Path(name)
    if candidate.suffix == ".ipynb" and candidate.is_file():
        return candidate
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        path = notebooks_dir() / f"{name}.ipynb"
        if path.is_file() and is_runbook(path):
            return path
    known = ", ".join(p.stem for p in runbook_paths()) or "none found"
    raise BadParameter(f"unknown notebook {name!r}: choose one of {known} (see `imsnb list`)")


def load_info(path: Path) -> NotebookInfo:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise BadParameter(f"{path} is not a readable notebook: {exc}") from None
    title, purpose = "", ""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            lines = [ln.strip() for ln in _source(cell).splitlines() if ln.strip()]
            title = next((ln.lstrip("# ") for ln in lines if ln.startswith("#")), path.stem)
            body = [ln for ln in lines if not ln.startswith("#")]
            purpose = re.sub(r"\*\*When to use:\*\*\s*", "", " ".join(body)).split(" — ")[0]
            break
    params_cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    parameters = parse_parameters(_source(params_cell)) if params_cell else {}
    return NotebookInfo(path.stem, path, title, purpose.split(". ")[0].rstrip("."), parameters)


def list_notebooks() -> list[NotebookInfo]:
    """The catalogue: the runbook notebooks in the folder (an `Untitled.ipynb` or a scratch notebook is not one)."""
    return [load_info(p) for p in runbook_paths()]


def runbook_paths(folder: Path | None = None) -> list[Path]:
    """The runbook notebooks in `folder` (default: the catalogue's): a title cell first and a `parameters` cell."""
    return [p for p in sorted((folder or notebooks_dir()).glob("*.ipynb")) if is_runbook(p)]


def is_runbook(path: Path) -> bool:
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first = cells[0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    titled = first.get("cell_type") == "markdown" and _source(first).lstrip().startswith("# ")
    return titled and any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)


def parse_parameters(source: str) -> dict[str, Parameter]:
    """`name = literal  # help` assignments of a parameters cell, in order."""
    lines = source.splitlines()
    found: dict[str, Parameter] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            continue
        rest = lines[node.end_lineno - 1][node.value.end_col_offset :]
        help_text = rest.split("#", 1)[1].strip() if "#" in rest else ""
        kind = "str" if default is None else TYPE_NAMES.get(type(default), "str")
        found[node.targets[0].id] = Parameter(node.targets[0].id, kind, default, help_text)
    return found


def _source(cell: dict | None) -> str:
    if not cell:
        return ""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src
