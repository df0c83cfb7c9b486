"""The notebook contract (DESIGN.md): stripped, titled, parameters after imports, no raw SQL or boto3, a row in the
docs' catalogue (docs/notebooks.md)."""

from __future__ import annotations

import json
import re

import pytest
from helpers import ROOT

from imsnb.runs.catalogue import list_notebooks, load_info

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {
        "db_performance",
        "health_check",
        "redis_cache",
        "api_timeout",
        "certificate_expiry",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shape(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert "When to use" in "".join(cells[0]["source"])
    tagged = [i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    index = tagged[0]
    assert index < len(cells) - 1, "the parameters cell is never last"
    assert all(c["cell_type"] == "markdown" or "import" in "".join(c["source"]) for c in cells[1:index]), (
        "only imports come before the parameters cell"
    )
    params = load_info(path).parameters
    assert {"incident_id", "environment", "window"} <= set(params)
    assert "report(findings)" in "".join(cells[-1]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_raw_sql_or_boto3(path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "boto3" not in code and "psycopg" not in code
    assert not re.search(r"\b(SELECT|UPDATE|DELETE|INSERT)\s+\S", code), "SQL belongs in imsnb, not in notebooks"


def test_every_notebook_has_a_row_in_the_docs_catalogue():
    catalogue = (ROOT / "docs" / "notebooks.md").read_text()
    for info in list_notebooks():
        assert f"| `{info.name}` |" in catalogue, f"docs/notebooks.md has no row for {info.name}"


def test_list_reads_types_defaults_and_help():
    info = load_info(ROOT / "notebooks" / "db_performance.ipynb")
    assert info.title == "Database performance degradation"
    window = info.parameters["window"]
    assert (window.type, window.default) == ("str", "1h") and "s, m, h or d" in window.help
    assert info.parameters["top_n"].type == "int" and info.parameters["slow_query_ms"].type == "float"
    assert info.parameters["start"].optional
