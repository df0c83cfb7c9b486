"""A check is one judge and one catalogue entry (issue 25): the two halves are held together here, without servers.

Read from the source, not from a run: every check name a judge or a finding uses in imsnb/ is in CHECKS; every
CHECKS entry is judged somewhere (or its levels judge another check) and says what it tells; every
`findings.section("...")` in the notebooks and in imsnb/ names a check or one of SECTIONS, and every SECTIONS entry
is a section somewhere. A forgotten entry used to surface only at run time, as a "could not complete" WARNING.

The documentation of a check is its CHECKS entry's `about` (and its Threshold's `source`, the runbook's words):
the docs pages are written from it, so an entry without one fails here.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imsnb.findings import CHECKS, COMPONENTS, SECTIONS, component_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imsnb"
JUDGES = {"judge", "unjudged", "judge_ratio"}  # called by name, the check first
FINDING_FACTORIES = {"of", "ok"}  # Finding.of / Finding.ok, the check first
# Where a judge may take its check from a variable: the generic machinery (the check is its caller's), the
# reachability helper (f"{source}.reachable", its callers' sources are read below) and triage's loop over literal names.
DYNAMIC_OK = {"imsnb/findings/", "imsnb/session.py", "imsnb/triage.py"}


@dataclass
class Uses:
    judged: dict[str, list[str]] = field(default_factory=dict)  # check -> where a judge or a finding names it
    levels: dict[str, list[str]] = field(default_factory=dict)  # check -> where `threshold(...)` reads its levels
    sections: dict[str, list[str]] = field(default_factory=dict)  # section name -> where
    unresolved: list[str] = field(default_factory=list)  # judge calls whose check the test cannot read

    def add(self, kind: dict[str, list[str]], names: set[str], where: str) -> None:
        for name in names:
            kind.setdefault(name, []).append(where)


def _strings(tree: ast.Module) -> dict[str, set[str]]:
    """Every name in a module assigned a string (or a choice of strings): CHECK = "x", check = "a" if y else "b"."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = _literals(node.value, {})
            if values is not None:
                found.setdefault(node.targets[0].id, set()).update(values)
    return found


def _literals(node: ast.expr, names: dict[str, set[str]]) -> set[str] | None:
    """The strings an expression can be, or None when it is not made of literals and known names."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body, names), _literals(node.orelse, names)
        return None if body is None or orelse is None else body | orelse
    return None


def _module_strings() -> dict[str, set[str]]:
    """Module-level string constants across imsnb/, for a constant imported from another module (STATUS_PAGES_CHECK)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, set()).add(node.value.value)
    return {name: values for name, values in found.items() if len(values) == 1}


def _called(node: ast.Call) -> tuple[str | None, str]:
    """(the object called on, the name called): ("Finding", "of"), (None, "judge"), ("findings", "section")."""
    func = node.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, ""


def _enclosing(tree: ast.Module) -> dict[ast.AST, ast.FunctionDef]:
    """Each node's innermost enclosing function."""
    found: dict[ast.AST, ast.FunctionDef] = {}
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(function):
            if node is not function:
                found[node] = function  # inner functions come later in the walk and win
    return found


@functools.cache
def _plain_calls(tree: ast.Module) -> dict[str, list[ast.Call]]:
    """A module's calls of a bare name, by that name: walked once, not once per helper argument (13 s to 1 s)."""
    found: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (called := _called(node))[0] is None:
            found.setdefault(called[1], []).append(node)
    return found


def _passed(tree: ast.Module, function: ast.FunctionDef, parameter: str, names: dict[str, set[str]]) -> set[str] | None:
    """The strings a module's calls pass to `function`'s `parameter` (a helper such as `_no_data(check, ...)`), or
    None when a call passes anything else or there is no call."""
    position = [a.arg for a in function.args.args].index(parameter)
    found: set[str] = set()
    calls = _plain_calls(tree).get(function.name, [])
    for call in calls:
        given = call.args[position] if len(call.args) > position else None
        given = next((k.value for k in call.keywords if k.arg == parameter), given)
        values = None if given is None else _literals(given, names)
        if values is None:
            return None
        found |= values
    return found or None


def _read_package() -> Uses:
    uses = Uses()
    constants = _module_strings()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        names = {**constants, **_strings(tree)}
        enclosing = _enclosing(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{relative}:{node.lineno}"
            owner, name = _called(node)
            for keyword in node.keywords:  # NotConfigured(..., check="cache.configured"), Unreachable(..., check=)
                if keyword.arg == "check" and (values := _literals(keyword.value, names)):
                    uses.add(uses.judged, values, where)
            if not node.args:
                continue
            first = _literals(node.args[0], names)
            function = enclosing.get(node)
            parameters = [a.arg for a in function.args.args] if function is not None else []
            if first is None and isinstance(node.args[0], ast.Name) and node.args[0].id in parameters:
                first = _passed(tree, function, node.args[0].id, names)  # a helper judging its caller's check
            if (owner is None and name in JUDGES) or (owner == "Finding" and name in FINDING_FACTORIES):
                if first is None:
                    uses.unresolved.append(f"{where} {ast.unparse(node.args[0])}")
                else:
                    uses.add(uses.judged, first, where)
            elif name == "threshold" and first is not None:
                uses.add(uses.levels, first, where)
            elif name == "section" and first is not None:
                uses.add(uses.sections, first, where)
            elif owner == "session" and name == "reachable_finding" and first is not None:
                uses.add(uses.judged, {f"{source}.reachable" for source in first}, where)
            elif owner == "Finding" and name == "unusable" and len(node.args) > 1:
                sources = _literals(node.args[1], names) or set()
                uses.add(uses.judged, {f"{s}.{what}" for s in sources for what in ("reachable", "configured")}, where)
    return uses


def _notebook_sections() -> dict[str, list[str]]:
    """`findings.section("...")` in every notebook's code cells; a section named by anything but a literal is
    reported as such (the test cannot check it)."""
    found: dict[str, list[str]] = {}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        for call in re.finditer(r"\.section\(([^)]*)\)", code):
            literal = re.fullmatch(r'\s*"([^"]+)"\s*', call[1])
            found.setdefault(literal[1] if literal else f"<not a literal: {call[1]}>", []).append(notebook.name)
    return found


@pytest.fixture(scope="module")
def uses() -> Uses:
    return _read_package()


def test_the_reader_finds_the_checks_it_should(uses):
    """The reader itself can fail: it finds literal, constant, chosen and derived names, and the notebooks' sections."""
    assert {"postgres.slow_queries", "cache.hit_rate", "aws.rds.cpu"} <= set(uses.judged)
    assert "api.third_party_status" in uses.judged, "a constant imported from another module (STATUS_PAGES_CHECK)"
    assert {"postgres.baseline", "cache.baseline"} <= set(uses.judged), "a check chosen by a conditional"
    assert {"postgres.reachable", "cache.reachable"} <= set(uses.judged), "session.reachable_finding's sources"
    assert "grafana.configured" in uses.judged, "a NotConfigured naming its check"
    assert "host.disk_free" in uses.levels
    assert len(uses.judged) >= 60 and len(_notebook_sections()) >= 60


def test_every_check_a_judge_names_is_in_the_catalogue(uses):
    missing = {name: where[:3] for name, where in uses.judged.items() if name not in CHECKS}
    assert not missing, f"add these to imsnb/findings/catalogue.py CHECKS (a Check with `about`): {missing}"


def test_judges_name_their_check_where_it_can_be_read(uses):
    hidden = [call for call in uses.unresolved if not any(call.startswith(ok) for ok in DYNAMIC_OK)]
    assert not hidden, f"name the check as a string literal or a module constant in these judge calls: {hidden}"


def test_every_catalogue_entry_is_judged_somewhere(uses):
    used = set(uses.judged) | set(uses.levels)
    unused = sorted(set(CHECKS) - used)
    assert not unused, f"CHECKS entries no judge names and no threshold() reads (judge or remove them): {unused}"


def test_every_catalogue_entry_says_what_it_tells():
    for name, check in CHECKS.items():
        words = check.about.split()
        assert len(words) >= 4 and check.about != name, f"{name}: `about` says what the finding tells, in words"
        assert not check.about.endswith("."), f"{name}: `about` is a phrase, like the others (no final period)"
        if check.limit is not None:
            assert check.limit.source, f"{name}: a threshold says where its level comes from (the runbook's words)"
            assert check.limit.unit, f"{name}: a threshold has a unit (ratio, ms, s, keys, ...)"
    for name, about in SECTIONS.items():
        assert len(about.split()) >= 3 and not about.endswith("."), f"SECTIONS[{name!r}]: say what it shows"


def test_every_check_and_section_belongs_to_a_component():
    for name in [*CHECKS, *SECTIONS]:
        assert component_of(name) in COMPONENTS
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", name), f"{name}: dotted lower-case words"
    assert not set(CHECKS) & set(SECTIONS), "a name is a check (it judges) or a section (it only shows), not both"


def test_every_notebook_section_names_a_check_or_a_section(uses):
    sections = _notebook_sections()
    for name, where in uses.sections.items():
        sections.setdefault(name, []).extend(where)
    unknown = {name: where[:3] for name, where in sections.items() if name not in CHECKS and name not in SECTIONS}
    assert not unknown, (
        "name a CHECKS check, or add the section to SECTIONS in imsnb/findings/catalogue.py with what it shows: "
        f"{unknown}"
    )


def test_every_section_entry_is_a_section_somewhere(uses):
    used = set(_notebook_sections()) | set(uses.sections)
    stale = sorted(set(SECTIONS) - used)
    assert not stale, f"SECTIONS entries no notebook or module uses as a section (remove them): {stale}"
