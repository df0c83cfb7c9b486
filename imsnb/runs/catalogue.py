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

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a runbook notebook without outputs is ~20 KB
TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}


def notebooks_dir() -> Path:
    """IMSNB_NOTEBOOKS, else the repository's notebooks/ folder."""
    return Path(os.environ.get("IMSNB_NOTEBOOKS") or Path(__file__).resolve().parents[2] / "notebooks")


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
    targets: tuple[str, ...] = ()  # metadata `imsnb.targets`: what it diagnoses (postgres, redis, api, ...)


def find_notebook(name: str) -> Path:
    """A notebook by name (`db_performance`, or `db_performance.ipynb`) or by path to an .ipynb file.

    A name with a `/` or ending in `.ipynb` is a path first; `NAME.ipynb` that is not a file here is the
    catalogue's NAME. A bare name is always the catalogue's, even if a file of that name is in the current folder.
    """
    if not isinstance(name, str) or not name.strip():
        raise BadParameter("no notebook named: give one of those `imsnb list` shows")
    candidate = Path(name)
    if candidate.suffix == ".ipynb" or "/" in name or os.sep in name:
        if candidate.is_file() and candidate.suffix == ".ipynb":
            return candidate
        in_catalogue = notebooks_dir() / candidate.name
        if candidate.name == name and re.fullmatch(r"[A-Za-z0-9_-]+\.ipynb", name) and in_catalogue.is_file():
            return in_catalogue
        if candidate.is_dir():
            raise BadParameter(f"notebook {name!r} is a folder: give an .ipynb file or a name from `imsnb list`")
        if candidate.is_file():
            raise BadParameter(f"notebook {name!r} is not an .ipynb file: give one, or a name from `imsnb list`")
        raise BadParameter(f"no notebook file {name!r}: check the path, or give a name from `imsnb list`")
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        path = notebooks_dir() / f"{name}.ipynb"
        if path.is_file() and is_runbook(path):
            return path
    known = ", ".join(p.stem for p in runbook_paths()) or "none found"
    raise BadParameter(f"unknown notebook {name!r}: choose one of {known} (see `imsnb list`)")


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook's JSON, checked to be a notebook papermill can run; BadParameter naming the first problem."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise BadParameter(f"{path} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB: not a runbook notebook")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadParameter(f"{path} cannot be read: {_one_line(exc)}") from None
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadParameter(f"{path} is not a notebook: not JSON ({_one_line(exc)})") from None
    if not isinstance(nb, dict):
        raise BadParameter(f"{path} is not a notebook: its JSON is a {type(nb).__name__}, not an object with cells")
    if nb.get("nbformat") != 4:
        raise BadParameter(f"{path} is not a version 4 notebook (nbformat {nb.get('nbformat')!r}): save it in Jupyter")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise BadParameter(f"{path} is not a notebook: it has no list of cells")
    for index, cell in enumerate(cells):
        problem = _cell_problem(cell)
        if problem:
            raise BadParameter(f"{path} is not a runnable notebook: cell {index} {problem}")
    if not isinstance(nb.get("metadata", {}), dict):
        raise BadParameter(f"{path} is not a notebook: its metadata is not an object")
    return nb


def _cell_problem(cell: Any) -> str | None:
    if not isinstance(cell, dict):
        return "is not an object"
    if cell.get("cell_type") not in ("code", "markdown", "raw"):
        return f"has cell_type {_short(cell.get('cell_type'))} (code, markdown or raw)"
    source = cell.get("source")
    if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
        return "has no source text"
    metadata = cell.get("metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("tags", []), list):
        return "has malformed metadata"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_info(path: Path) -> NotebookInfo:
    """Title, purpose, parameters and targets of a notebook; BadParameter (one line) when it is not usable."""
    nb = read_notebook(path)
    cells = nb["cells"]
    title, purpose = "", ""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            lines = [ln.strip() for ln in _source(cell).splitlines() if ln.strip()]
            title = next((ln.lstrip("# ") for ln in lines if ln.startswith("#")), path.stem)
            body = [ln for ln in lines if not ln.startswith("#")]
            purpose = re.sub(r"\*\*When to use:\*\*\s*", "", " ".join(body)).split(" — ")[0]
            break
    params_cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    try:
        parameters = parse_parameters(_source(params_cell)) if params_cell else {}
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        reason = getattr(exc, "msg", None) or _one_line(exc)
        raise BadParameter(f"the parameters cell of {path} does not parse{where}: {_one_line(reason)}") from None
    meta = nb.get("metadata", {}).get("imsnb")
    targets = meta.get("targets") if isinstance(meta, dict) else None
    targets = tuple(t for t in targets if isinstance(t, str)) if isinstance(targets, list) else ()
    return NotebookInfo(path.stem, path, title, purpose.split(". ")[0].rstrip("."), parameters, targets)


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
        except (ValueError, TypeError, RecursionError):  # not a literal: not a parameter
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
