"""Guarantee 9: text from parameters and targets is shown as text, never run as code.

Hostile parameters, log lines, Redis key names, query text and API bodies go through the real runner into
report.html; headless Chromium opens it and no script runs: neither with the report as written, nor with its
Content-Security-Policy removed (the escaping holds alone), nor with live script planted after it (the policy holds
alone). A control page proves the witness sees a script that does run. Every HTML output carries the
`mathjax_ignore` class on its outermost element, so JupyterLab leaves `$1` placeholders as they are."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from helpers import ROOT, read_summary
from test_reports_offline import open_offline

from imsnb.runs.execute import run_notebook

MARK = "data-imsnb-pwned"
HOSTILE = [
    f"<img src=x onerror=\"document.documentElement.setAttribute('{MARK}','img')\">",
    f"<script>document.documentElement.setAttribute('{MARK}','script')</script>",
    f"<svg onload=\"document.documentElement.setAttribute('{MARK}','svg')\"></svg>",
    f"**bold** <iframe srcdoc=\"<script>parent.document.documentElement.setAttribute('{MARK}','frame')</script>\">",
]
QUERY = "SELECT pg_sleep($2), count(*) FROM orders WHERE email LIKE $1"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

HOSTILE_NOTEBOOK_CELLS = [
    ("markdown", "# Hostile text\n\n**When to use:** never; a test of the report's escaping."),
    ("code", "import pandas as pd\n\nfrom imsnb.findings import Finding\nfrom imsnb.report import report, show"),
    (
        "parameters",
        'title = "t"  # a hostile title\nline = "l"  # a hostile log line\nredis_name = "k"  # a hostile key name',
    ),
    (
        "code",
        "show(pd.DataFrame({'log line': [line], 'redis key': [redis_name], 'query': [QUERY]}), title)\n"
        "show(pd.DataFrame(), title)",
    ),
    (
        "code",
        "report([Finding('api.body', 'api', 'CRITICAL', value=line, threshold=redis_name, unit=title, message=line),\n"
        "        Finding('postgres.slow', 'database', 'WARNING', value=1, message=QUERY)])",
    ),
]


def hostile_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    for kind, source in HOSTILE_NOTEBOOK_CELLS:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source.replace("QUERY", repr(QUERY)))
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def policy(page_text: str) -> str | None:
    """The Content-Security-Policy a page's head declares (attributes in either order)."""
    head = page_text.split("</head>")[0]
    for meta in re.findall(r"<meta\b[^>]*>", head):
        if re.search(r'http-equiv="Content-Security-Policy"', meta, re.I):
            return re.search(r'content="([^"]*)"', meta)[1]
    return None


def pwned(page: Path, work: Path) -> str | None:
    """What a script in `page` managed to mark, if anything (headless Chromium, network off)."""
    dom, _ = open_offline(page, work)
    found = re.search(rf'<html[^>]*\b{MARK}="([^"]*)"', dom)
    return found[1] if found else None


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    notebook = hostile_notebook(work / "hostile_text.ipynb")
    params = {"title": " ".join(HOSTILE), "line": HOSTILE[0] + HOSTILE[3], "redis_name": HOSTILE[1] + HOSTILE[2]}
    result = run_notebook(str(notebook), params, incident_id="INC-HOSTILE", outputs=work / "outputs")
    assert result.status == "ok", read_summary(result.folder).get("error")
    return result


def test_the_witness_sees_a_script_that_runs(tmp_path):
    for payload in HOSTILE[:3]:
        page = tmp_path / "live.html"
        page.write_text(f"<html><body><p>{payload}</p></body></html>")
        assert pwned(page, tmp_path / "chromium") is not None, payload


def test_hostile_parameters_and_data_run_no_script_in_report_html(hostile_run, tmp_path):
    report = hostile_run.folder / "report.html"
    text = report.read_text(encoding="utf-8")
    assert policy(text) == CSP == policy((hostile_run.folder.parent / "index.html").read_text())
    assert "<script" not in text.lower().replace("&lt;script", "")  # no script element at all, only escaped text
    assert pwned(report, tmp_path / "as-written") is None

    no_policy = tmp_path / "no-policy.html"  # the escaping alone
    no_policy.write_text(text.replace(CSP, "default-src * 'unsafe-inline'"), encoding="utf-8")
    assert pwned(no_policy, tmp_path / "no-policy") is None

    planted = tmp_path / "planted.html"  # the policy alone: live script after it does not run
    planted.write_text(text.replace("</body>", HOSTILE[0] + HOSTILE[1] + "</body>"), encoding="utf-8")
    assert pwned(planted, tmp_path / "planted") is None


def test_the_reported_prefix_parameter_is_text_in_backup_verification(tmp_path):
    """The issue's reproduction: `-p prefix '<img src=x onerror=...>'` gave a live handler in report.html."""
    result = run_notebook("backup_verification", {"prefix": HOSTILE[0]}, incident_id="INC-X", outputs=tmp_path / "o")
    assert result.status == "ok"
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    outputs = [o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])]
    marked_up = [d.get(kind) for d in outputs for kind in ("text/html", "text/markdown") if kind in d]
    shown = [m for m in marked_up if "<img src=x" in "".join(m)]
    assert shown == [], "a hostile parameter reached an output unescaped"
    assert pwned(result.folder / "report.html", tmp_path / "chromium") is None


def test_every_html_output_is_marked_for_math_rendering_to_skip(hostile_run):
    """JupyterLab 4's MathJax skips an element of class `mathjax_ignore` and all inside it: the class must be on
    the outermost element of each HTML output, and no output is Markdown (which JupyterLab typesets)."""
    nb = json.loads((hostile_run.folder / "notebook.ipynb").read_text())
    outputs = [o["data"] for c in nb["cells"] for o in c.get("outputs", []) if "data" in o]
    html_outputs = [d["text/html"] for d in outputs if "text/html" in d]
    assert len(html_outputs) == 5  # two titles, a table, an empty table, the findings table
    for html in html_outputs:
        html = "".join(html) if isinstance(html, list) else html
        outermost = re.match(r"\s*<(\w+)\b[^>]*\bclass='([^']*)'", html)
        assert outermost and "mathjax_ignore" in outermost[2].split(), html[:200]
        assert html.rstrip().endswith(f"</{outermost[1]}>")
    assert not [d for d in outputs if "text/markdown" in d]
    assert sum(QUERY in "".join(h) for h in html_outputs) == 2  # the table and the findings table, verbatim


LAB_TARGET = Path(sys.prefix) / "jupyterlab"  # installed by `make .venv/.test-installed`, outside the test venv


def test_query_text_shows_verbatim_in_jupyterlab(hostile_run, tmp_path):
    """A real `imsnb lab` (JupyterLab 4, its MathJax) opens a notebook holding imsnb's outputs and, as a control,
    the same table without the class; headless Chromium reads the rendered page: imsnb's outputs show `$1` as
    text, the control is typeset as maths (so the witness sees what the class prevents)."""
    if not (LAB_TARGET / "jupyterlab").is_dir():
        pytest.fail(f"JupyterLab for this test is not in {LAB_TARGET}: run `make .venv/.test-installed`")
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{LAB_TARGET}",  # this checkout's imsnb, not the venv's editable one
        "JUPYTERLAB_DIR": str(LAB_TARGET / "share" / "jupyter" / "lab"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
    }
    port = free_port()
    command = [sys.executable, "-m", "imsnb.cli", "lab", "--port", str(port), "--outputs", str(tmp_path / "out")]
    lab = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        ready = lab.stdout.readline()
        assert "lab ready" in ready, ready + (lab.stderr.read() if lab.poll() is not None else "")
        folder = Path(re.search(r"copied to (\S+);", ready)[1])
        url = re.search(r"open (\S+)", ready)[1]
        probe = json.loads((hostile_run.folder / "notebook.ipynb").read_text())
        control = pd.DataFrame({"query": [QUERY]}).to_html(index=False)
        probe["cells"].append(
            nbformat.v4.new_code_cell(
                "control", outputs=[nbformat.v4.new_output("display_data", data={"text/html": control})]
            )
        )
        (folder / "probe.ipynb").write_text(json.dumps(probe))
        dom = rendered(url.replace("/lab?", "/lab/tree/probe.ipynb?"), tmp_path / "chromium")
    finally:
        os.killpg(lab.pid, signal.SIGINT)
        lab.wait(timeout=60)
    outputs = re.split(r'<div class="[^"]*jp-OutputArea-output"[^>]*data-mime-type="text/html">', dom)[1:]
    outputs = [re.split(r"jp-OutputArea-child|jp-Cell-inputWrapper|jp-InputArea", o)[0] for o in outputs]  # alone
    verbatim = [o for o in outputs if "LIKE $1" in o and "mjx-" not in o]
    typeset = [o for o in outputs if "mjx-" in o]
    shown = [re.sub(r"<[^>]+>", " ", o).split()[:12] for o in outputs]
    assert len(verbatim) == 2, f"{len(verbatim)} of {len(outputs)} HTML outputs with the query verbatim: {shown}"
    assert len(typeset) == 1, "the control (no mathjax_ignore) was not typeset: the witness saw no MathJax"


def rendered(url: str, work: Path) -> str:
    """The DOM of a JupyterLab page after it has had time to open the notebook and typeset (virtual time)."""
    import shutil as sh

    command = [
        sh.which("chromium") or "chromium",
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={work}",
        "--virtual-time-budget=40000",
        "--dump-dom",
        url,
    ]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
