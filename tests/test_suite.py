"""imsnb.runs.suite: every notebook under one incident id, in parallel kernels, on the db-degradation sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import ORDER, ROOT, checks_at_or_above, read_summary

from imsnb import archive
from imsnb.errors import BadParameter
from imsnb.runs.suite import all_notebook_names, plan_suite, run_suite, suite_exit_code

pytestmark = pytest.mark.servers  # notebook suites on the session's sandbox

SEEDED_DB = {"postgres.slow_queries", "postgres.blocked_queries", "postgres.connections_used"}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])

    def handle_data(self, data):
        self.text.append(data)


def parse_index(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_suite_files_every_notebook_under_one_incident(degraded_suite):
    outputs, results, seen = degraded_suite
    names = all_notebook_names()
    assert len(names) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    assert [p.name for p in outputs.iterdir()] == ["INC-SUITE"], "one incident folder, nothing else"
    incident = outputs / "INC-SUITE"
    runs = sorted(p for p in incident.iterdir() if p.is_dir())
    assert sorted(p.name.split("-", 1)[1] for p in runs) == sorted(names)
    assert sorted(p.name for p in incident.iterdir() if p.is_file()) == ["index.html"]
    for folder in runs:
        summary = read_summary(folder)
        kept = summary.get("files", [])  # performance_baseline keeps its metrics export with the run
        assert kept == [] or folder.name.endswith("performance_baseline"), (folder.name, kept)
        # an archive upload of this shared suite (tests/test_archive.py), when it ran first, leaves where it went
        files = sorted(p.name for p in folder.iterdir() if p.name != archive.ARCHIVED)
        assert files == sorted(["notebook.ipynb", "report.html", "summary.json", *kept])
        assert summary["incident_id"] == "INC-SUITE" and summary["status"] == "ok", (folder.name, summary.get("error"))
        assert summary["parameters"]["window"] == "30m"
    # results come back in the order asked, on_result saw each once as it finished
    assert [r.summary["notebook"] for r in results] == names
    assert sorted(r.summary["notebook"] for r in seen) == sorted(names)
    db = next(r for r in results if r.summary["notebook"] == "db_performance")
    assert checks_at_or_above(db.summary, "WARNING") >= SEEDED_DB


def test_index_links_every_report_and_shows_the_worst_severity(degraded_suite):
    outputs, results, _ = degraded_suite
    incident = outputs / "INC-SUITE"
    index = parse_index(incident / "index.html")
    reports = {h for h in index.hrefs if h.endswith("/report.html")}
    assert reports == {f"{r.folder.name}/report.html" for r in results}
    assert all((incident / href).is_file() for href in index.hrefs)
    text = " ".join(index.text)
    worst = max((r.summary["severity"] for r in results), key=ORDER.index)
    assert f"worst finding: {worst}" in " ".join(text.split())
    assert "Incident INC-SUITE" in text and "Root cause" in text and "Action items" in text
    # the timeline holds every finding above OK, e.g. the seeded lock wait
    assert "postgres.blocked_queries" in text and "postgres.idle_in_transaction" in text


def test_suite_exit_code_follows_the_worst_run(degraded_suite):
    _, results, _ = degraded_suite
    codes = {r.exit_code for r in results}
    assert codes <= {0, 1}
    assert suite_exit_code(results) == (1 if 1 in codes else 0)


def test_parameters_go_to_the_notebooks_that_declare_them(tmp_path):
    params = {"top_n": 3, "window": "15m"}
    plan = plan_suite(["db_performance", "health_check"], params, incident_id="X", outputs=tmp_path)
    assert plan == [("db_performance", {"top_n": 3, "window": "15m"}), ("health_check", {"window": "15m"})]


@pytest.mark.parametrize(
    ("names", "params", "problem"),
    [
        (["db_performance", "health_check"], {"colour": "red"}, "'colour' is declared by none of these notebooks"),
        (["db_performance", "no_such"], {}, "unknown notebook 'no_such'"),
        (["db_performance", "health_check"], {"window": "5x"}, "window '5x' is not a duration"),
        ([], {}, "no notebooks given"),
    ],
)
def test_bad_input_is_refused_before_any_kernel_starts(tmp_path, names, params, problem):
    with pytest.raises(BadParameter, match=problem):
        run_suite(names, params, incident_id="INC-BAD", outputs=tmp_path)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsnb.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["suite"], "name the notebooks to run, or pass --all"),
        (["suite", "--all", "health_check"], "name the notebooks to run, or pass --all"),
        (["suite", "--all", "-p", "colour", "red"], "'colour' is declared by none"),
        (["suite", "health_check", "--jobs", "0"], "jobs must be a whole number of at least 1"),
        (["suite", "health_check", "--archive", "http://bucket"], "is not an S3 URL"),
    ],
)
def test_suite_cli_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    result = run_cli(*args, "--outputs", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_suite_cli_prints_a_line_per_notebook_and_a_summary(degraded, tmp_path):
    result = run_cli(
        "suite", "health_check", "db_performance", "-p", "window", "30m", "-p", "top_n", "3",
        "--incident", "INC-CLI", "--jobs", "2", "--fail-on", "CRITICAL", "--outputs", "out", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    progress = [ln for ln in lines if ln.startswith("[")]
    assert len(progress) == 2
    for ln in progress:  # what happened, then the worst finding: never "ok" beside "ERROR"
        assert ln.split()[1] in ("health_check", "db_performance") and ln.split()[2:4] == ["completed", "in"], ln
        assert ln.split()[-1] in ORDER and "; worst finding " in ln, ln
    assert any(ln.startswith("incident INC-CLI: 2 run(s) in ") for ln in lines)
    assert "index: out/INC-CLI/index.html" in result.stdout
    db = next(p for p in (tmp_path / "out" / "INC-CLI").iterdir() if p.name.endswith("db_performance"))
    assert read_summary(db)["parameters"]["top_n"] == 3
    worth = [f for f in read_summary(db)["findings"] if ORDER.index(f["severity"]) >= ORDER.index("WARNING")]
    assert worth and all(f"{f['severity']:<8} db_performance  {f['check']}: " in result.stdout for f in worth)
    listing = sorted(p.name for p in (tmp_path / "out" / "INC-CLI").iterdir())
    health = next((p for p in (tmp_path / "out" / "INC-CLI").iterdir() if p.name.endswith("health_check")), listing)
    assert "top_n" not in read_summary(health)["parameters"]


def test_runs_in_threads_keep_the_process_cwd_and_env_and_kernels_start_beside_the_notebook(tmp_path, monkeypatch):
    """papermill's cwd= chdir()s the whole process; parallel runs must not move each other's relative paths."""
    import threading

    import nbformat

    from imsnb.runs.execute import run_notebook

    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Where am I"),
        nbformat.v4.new_code_cell("incident_id = 'x'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os, time\nprint('cwd=' + os.getcwd())\ntime.sleep(1)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "where.ipynb")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imsnb.toml").write_text("[environments.x]\n")
    monkeypatch.delenv("IMSNB_CONFIG", raising=False)
    before_cwd, before_env = os.getcwd(), dict(os.environ)
    seen_cwd, seen_env, done = set(), [], threading.Event()
    results = []
    worker = threading.Thread(
        target=lambda: (results.append(run_notebook(str(folder / "where.ipynb"), outputs="out")), done.set())
    )
    worker.start()
    while not done.wait(0.01):
        seen_cwd.add(os.getcwd())
        seen_env.append("IMSNB_CONFIG" in os.environ)
    worker.join()
    assert seen_cwd == {before_cwd} and not any(seen_env) and dict(os.environ) == before_env
    executed = (results[0].folder / "notebook.ipynb").read_text()
    assert f"cwd={folder}" in executed
    assert results[0].folder.parent == Path("out") / "adhoc" and (tmp_path / "out" / "adhoc").is_dir()


@pytest.mark.parametrize("argv", [["nosuch"], ["--jobs", "0", "health_check"], ["--all", "-p", "window", "abc"]])
def test_suite_bad_input_is_one_line_before_any_progress(argv, tmp_path, capsys):
    from imsnb.cli import main

    assert main(["suite", *argv, "--outputs", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_demo_says_what_matters_once_and_ends_with_the_next_steps(degraded_suite, capsys):
    """`make demo`'s output, captured from the suite's real runs: findings at WARNING and above, each plan listed
    but "both keys are missing ..." said once (not once per plan), what happened per run, then where to look."""
    from imsnb.cli.sandbox import DemoPrinter

    outputs, results, _ = degraded_suite
    printer = DemoPrinter("db-degradation")
    for r in results:
        printer.start(r.summary["notebook"])
        printer.result(r)
    printer.end(results)
    out = capsys.readouterr().out
    planned = [a for r in results for a in r.summary["actions"] if a["status"] == "planned"]
    assert len(planned) >= 3, planned
    assert out.count("both keys are missing") == 1, out
    assert all(f"action planned  {a['action']} {a['target']}" in out for a in planned), out
    assert "status ok" not in out and out.count(": completed in ") == len(results), out
    assert not re.search(r"^  (OK|INFO) ", out, re.M), "OK and INFO findings stay in the reports"
    # One line per finding at WARNING and above (as many as the scenario's story has: ~17 on db-degradation), and
    # besides them a few lines per run and the next steps: ~103 lines, where the repeated sentence made 187 in all.
    told = [line for line in out.splitlines() if re.match(r"  (WARNING|ERROR|CRITICAL) ", line)]
    assert len(out.splitlines()) - len(told) < 110, out
    steps = out.split("\nnext steps:\n")[1]
    assert f"open {outputs / 'INC-SUITE' / 'index.html'}" in steps
    assert "make lab SCENARIO=db-degradation" in steps and "imsnb triage --incident PRACTICE --run-suggested" in steps
