"""The data flows one way: no import circle between imsnb's modules or its packages, and an import inside a
function only where it is documented as lazy (a heavy library, or the one edge that would close a circle), so the
reader sees a module's dependencies at its top."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imsnb"
# A module whose top comment says "Lazy imports:" imports inside its functions by rule (the CLI's command groups).
MODULE_RULE = "Lazy imports:"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(name: str) -> set[str]:
    """The imsnb modules `name` loads when it is imported: its module-level imports (not under `if TYPE_CHECKING`),
    each with the packages above it (importing a.b.c runs a/__init__ and a/b/__init__ first)."""
    return _imported(name, ast.parse(MODULES[name].read_text()).body)


def every_import(name: str) -> set[str]:
    """`top_level_imports` and the imports inside functions (lazy ones too): what `name` may load at some point."""
    return _imported(name, ast.walk(ast.parse(MODULES[name].read_text())))


def _imported(name: str, nodes: Iterable[ast.AST]) -> set[str]:
    """The imsnb modules the import statements among `nodes` load, each with the packages above it."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                above = ".".join(parts[:i])
                if above in MODULES and above != name and not name.startswith(above + "."):
                    found.add(above)
    return found


def area(name: str) -> str:
    """imsnb.runs.execute -> runs; imsnb.scrub -> scrub."""
    return name.split(".")[1] if "." in name else name


def test_no_module_imports_itself_back():
    graph = {name: top_level_imports(name) for name in MODULES}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_no_package_imports_itself_back():
    """The issue's circles: runs -> archive -> runs and runs -> notify -> runs (and any other between packages)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        graph[area(name)] |= {area(other) for other in top_level_imports(name) if area(other) != area(name)}
    graph.pop("imsnb", None)  # the package face re-exports every topic; nothing below imports it back at the top
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"package circle: {' -> '.join(exc.args[1])}") from None


def undocumented_inner_imports(path: Path) -> list[str]:
    """Imports inside functions with no `lazy` comment on the line, above the block of imports it starts, or in the
    docstring of its function."""
    source = path.read_text()
    if MODULE_RULE in source.split('"""', 2)[-1].split("from __future__")[0] or MODULE_RULE in source[:2000]:
        return []
    lines = source.splitlines()
    missing = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = (ast.get_docstring(function) or "").lower()
        for node in ast.walk(function):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            row = node.lineno - 1
            while row > 0 and lines[row - 1].strip().startswith(("import ", "from ")):
                row -= 1  # up to the first import of the block
            comments = []
            while row > 0 and lines[row - 1].strip().startswith("#"):
                row -= 1  # and the comment above it
                comments.append(lines[row].lower())
            said = "lazy" in lines[node.lineno - 1].lower() or any("lazy" in line for line in comments)
            if not said and "lazy" not in docstring:
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {lines[node.lineno - 1].strip()}")
    return missing


def test_imports_inside_functions_are_documented_as_lazy():
    missing = [line for path in MODULES.values() for line in undocumented_inner_imports(path)]
    assert not missing, "move to the module's top, or say why it is lazy:\n" + "\n".join(missing)


def test_the_shared_layer_imports_nothing_above_it():
    """Scrubbing, errors, files, windows and findings serve every layer: none of them reaches up into a run."""
    above = {"runs", "archive", "notify", "cli", "delivery", "schedule", "integrations"}
    for name in MODULES:
        if area(name) in {"scrub", "errors", "files", "window", "period", "findings", "config"}:
            reached = {area(other) for other in top_level_imports(name)} & above
            assert not reached, f"{name} imports {sorted(reached)}"


def test_runs_archive_and_notify_form_no_circle_even_lazily():
    """The runs write folders and the incident index; the archive (listing, drafts, S3) and notify read them;
    delivery sequences both. No edge back, not even one deferred into a function."""
    layers = {"runs", "archive", "notify", "delivery"}
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        if area(name) in layers:
            graph[area(name)] |= {area(o) for o in every_import(name) if area(o) in layers and area(o) != area(name)}
    try:
        order = tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"package circle: {' -> '.join(exc.args[1])}") from None
    assert order.index("runs") < order.index("archive") < order.index("notify") < order.index("delivery"), order
