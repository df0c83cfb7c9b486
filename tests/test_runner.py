"""imsnb.runs (execute, summary, scrub, folder): real kernels, real PostgreSQL, real run folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import checks_at_or_above, every_byte, finding, read_summary

from imsnb.errors import BadParameter
from imsnb.runs.execute import run_notebook
from imsnb.runs.summary import summarize

pytestmark = pytest.mark.servers  # notebook runs on the session's sandbox

SEEDED = {
    "postgres.slow_queries",
    "postgres.blocked_queries",
    "postgres.connections_used",
    "postgres.idle_in_transaction",
}


@pytest.fixture(scope="module")
def degraded_run(degraded, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    return run_notebook("db_performance", {"window": "30m"}, incident_id="INC-1234", outputs=outputs)


def test_degraded_run_finds_every_seeded_problem(degraded_run):
    summary = read_summary(degraded_run.folder)
    assert summary["status"] == "ok"
    assert checks_at_or_above(summary, "WARNING") >= SEEDED
    # the lock wait escalates to ERROR once it passes 30 s, which depends on when this test runs
    assert summary["severity"] in ("WARNING", "ERROR", "CRITICAL")
    assert degraded_run.exit_code == (0 if summary["severity"] == "WARNING" else 1)
    expected = {"WARNING": "Slack + Email", "ERROR": "Slack + Email + SMS", "CRITICAL": "Slack + Email + SMS + Phone"}[
        summary["severity"]
    ]
    assert summary["escalation"]["notification"] == expected
    assert finding(summary, "postgres.reachable")["severity"] == "OK"


def test_run_folder_layout_and_summary_keys(degraded_run):
    folder = degraded_run.folder
    assert folder.parent.name == "INC-1234"
    assert folder.name.endswith("-db_performance") and len(folder.name.split("-")[0]) == len("20261127T044920Z")
    assert sorted(p.name for p in folder.iterdir()) == ["notebook.ipynb", "report.html", "summary.json"]
    summary = read_summary(folder)
    assert {
        "notebook",
        "incident_id",
        "status",
        "started_at",
        "finished_at",
        "duration_s",
        "parameters",
        "severity",
        "findings",
        "escalation",
        "imsnb_version",
    } <= set(summary)
    assert summary["parameters"] == {"window": "30m", "incident_id": "INC-1234"}
    assert summary["duration_s"] > 0


def test_executed_notebook_is_the_artifact(degraded_run):
    nb = json.loads((degraded_run.folder / "notebook.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    assert ["injected-parameters"] in tags
    images = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 6, "RDS CPU, connections and IOPS, the connections and top statements charts, index costs"
    assert summarize(nb)["findings"] == read_summary(degraded_run.folder)["findings"]


def test_report_html_is_self_contained(degraded_run):
    html = (degraded_run.folder / "report.html").read_text()
    assert 'src="http' not in html and 'href="http' not in html and "cdnjs" not in html
    assert html.count('src="data:image/png;base64,') == 6
    assert "postgres.idle_in_transaction" in html


def test_no_secret_and_no_literal_in_any_file(degraded_run, degraded):
    blob = every_byte(degraded_run.folder)
    assert degraded.postgres.password.encode() not in blob
    assert b"jane.doe@example.com" not in blob
    assert b"example.org" not in blob


def test_healthy_run_reports_nothing_above_ok(healthy_sandbox, use_env, tmp_path):
    use_env(healthy_sandbox)
    result = run_notebook("db_performance", {}, incident_id="INC-OK", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok" and result.exit_code == 0
    assert not (SEEDED & checks_at_or_above(summary, "INFO"))
    # The sandbox started inside the 1 h window, so its statistics did: the new cluster's cold-start reads are the
    # window's (e.g. 96% buffer hits in the postgres database), worth knowing (INFO), never an alert.
    above_ok = [f for f in summary["findings"] if f["severity"] != "OK"]
    assert all(f["check"] == "postgres.cache_hit_ratio" and f["severity"] == "INFO" for f in above_ok), above_ok
    assert all("inside the window" in f["period"]["note"] for f in above_ok)
    assert summary["severity"] in ("OK", "INFO")


def test_unreachable_database_completes_with_critical_and_exit_1(monkeypatch, tmp_path):
    monkeypatch.setenv("DB_PORT", "1")
    result = run_notebook("db_performance", {}, incident_id="INC-DOWN", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok" and result.exit_code == 1
    reach = finding(summary, "postgres.reachable")
    assert reach["severity"] == "CRITICAL" and "refused" in reach["message"]
    assert summary["severity"] == "CRITICAL" and summary["escalation"]["escalation"] == "Page VP"


def test_fail_on_threshold_sets_exit_code(degraded, tmp_path):
    result = run_notebook("db_performance", {}, incident_id="INC-W", outputs=tmp_path, fail_on="warning")
    assert result.exit_code == 1


def _broken_notebook(tmp_path: Path, body: str) -> Path:
    nb = json.loads((Path("notebooks") / "db_performance.ipynb").read_text())
    nb["cells"] = nb["cells"][:3] + [
        {"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {}, "outputs": [], "source": body}
    ]
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_failing_cell_leaves_folder_with_status_failed(tmp_path):
    path = _broken_notebook(tmp_path, "raise RuntimeError('disk on fire')")
    result = run_notebook(str(path), {}, incident_id="INC-F", outputs=tmp_path / "out")
    summary = read_summary(result.folder)
    assert result.exit_code == 3 and summary["status"] == "failed"
    assert summary["error"]["ename"] == "RuntimeError" and "disk on fire" in summary["error"]["evalue"]
    assert "disk on fire" in (result.folder / "report.html").read_text()


def test_cell_timeout_leaves_folder_with_status_timeout(tmp_path):
    path = _broken_notebook(tmp_path, "import time\ntime.sleep(30)")
    result = run_notebook(str(path), {}, incident_id="INC-T", outputs=tmp_path / "out", timeout_s=2)
    summary = read_summary(result.folder)
    assert result.exit_code == 3 and summary["status"] == "timeout"
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    assert "did not finish" in "".join(nb["cells"][0]["source"])


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"nope": "1"}, "has no parameter 'nope'"),
        ({"top_n": "ten"}, "must be a int"),
        ({"window": "5x"}, "is not a duration"),
        ({"start": "yesterday"}, "is not an ISO 8601 time"),
        ({"db_password": "hunter2"}, "looks like a secret"),
        ({"environment": "postgresql://ims:hunter2@db/ims"}, "a URL with a password"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, params, problem):
    with pytest.raises(BadParameter, match=problem):
        run_notebook("db_performance", params, incident_id="INC-BAD", outputs=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_known_secret_value_is_refused_as_a_parameter(degraded, tmp_path):
    with pytest.raises(BadParameter, match="secret known from the environment"):
        run_notebook("db_performance", {"environment": degraded.postgres.password}, outputs=tmp_path)


def test_same_second_runs_get_distinct_folders(tmp_path, monkeypatch):
    from datetime import UTC, datetime

    from imsnb.runs.folder import write_run_folder

    folders = []
    for _ in range(2):
        nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        stamp = datetime(2026, 2, 8, 15, 30, tzinfo=UTC)
        folders.append(write_run_folder(tmp_path / "INC", stamp, "x", nb, {"status": "ok"})[0])
    assert folders[0] != folders[1] and folders[1].name == "20260208T153000Z-x-2"
    assert not [p for p in (tmp_path / "INC").iterdir() if p.name.startswith(".partial")]
    shutil.rmtree(tmp_path / "INC")


@pytest.mark.parametrize("timeout", [0, -5, float("nan")])
def test_non_positive_timeout_is_refused(tmp_path, timeout):
    with pytest.raises(BadParameter, match="timeout must be a positive"):
        run_notebook("db_performance", {}, outputs=tmp_path, timeout_s=timeout)


def test_unknown_environment_and_unwritable_outputs_are_bad_input(tmp_path, monkeypatch):
    (tmp_path / "imsnb.toml").write_text('[environments.staging]\nDB_HOST = "staging-db"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(tmp_path / "imsnb.toml"))
    with pytest.raises(BadParameter, match="environment 'nosuch' is not in .*known: staging"):
        run_notebook("db_performance", {"environment": "nosuch"}, outputs=tmp_path / "out")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadParameter, match="is a file"):
        run_notebook("db_performance", {}, outputs=tmp_path / "afile" / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "imsnb.toml"]


def test_named_environment_from_the_callers_imsnb_toml(tmp_path, monkeypatch):
    """The kernel runs in notebooks/, yet reads the imsnb.toml of the directory imsnb was started from."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMSNB_CONFIG", raising=False)
    (tmp_path / "imsnb.toml").write_text('[environments.broken]\nDB_PORT = "1"\n')
    result = run_notebook("db_performance", {"environment": "broken"}, outputs=tmp_path / "out")
    assert finding(read_summary(result.folder), "postgres.reachable")["severity"] == "CRITICAL"


def test_a_fractional_timeout_is_honoured_not_a_failure(tmp_path):
    """--timeout takes seconds as a float; nbclient takes whole seconds, so it gets the next one up."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    path = tmp_path / "quick.ipynb"
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Quick\n\n**When to use:** tests."),
            new_code_cell("window = '1h'", metadata={"tags": ["parameters"]}),
            new_code_cell("print('done')"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    result = run_notebook(str(path), {}, incident_id="INC-FRAC", outputs=tmp_path / "out", timeout_s=2.5)
    assert result.summary["status"] == "ok", result.summary.get("error")
