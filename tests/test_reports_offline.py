"""Archived reports are self-contained: opened in headless Chromium with the network off, every chart decodes
and the page asks for nothing over the network (Chromium's own NetLog is the witness). Screenshots are kept
under each test's tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers  # headless Chromium (a system package), and the suite's runs on the session's sandbox

PROBE = (
    "<script>window.addEventListener('load', () => document.body.setAttribute('data-imsnb-images', "
    "JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]))));</script>"
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless Chromium is needed: run scripts/system-deps (apt-get install chromium)")
    return found


def open_offline(page: Path, work: Path, *, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Load `page` with every connection refused (a dead proxy, no DNS); returns the DOM after load and the
    http(s) URLs the page itself asked for (Chromium's own background requests are told apart by initiator)."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    command = [
        chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={work / 'profile'}",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}",
        "--window-size=1280,2400",
    ]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    command += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    result = subprocess.run([*command, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    events = json.loads(netlog.read_text())["events"]
    asked = sorted(
        {
            e["params"]["url"]
            for e in events
            if isinstance(e.get("params"), dict)
            and str(e["params"].get("url", "")).startswith(("http:", "https:"))
            and e["params"].get("initiator") not in (None, "not an origin")
        }
    )
    return result.stdout, asked


def assert_screenshot_shows_something(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.01, "a blank screenshot"


def test_the_witness_sees_a_page_that_fetches(tmp_path):
    """Control: the same set-up does report a page that fetches an image and a stylesheet."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<html><body><img src="http://imsnb-probe.invalid/x.png">'
        '<link rel="stylesheet" href="https://cdn.imsnb-probe.invalid/a.css"></body></html>'
    )
    _, asked = open_offline(page, tmp_path / "chromium")
    assert asked == ["http://imsnb-probe.invalid/x.png", "https://cdn.imsnb-probe.invalid/a.css"]


@pytest.mark.parametrize(("notebook", "charts"), [("db_performance", 6), ("performance_baseline", None)])
def test_report_charts_render_offline_and_nothing_is_fetched(degraded_suite, tmp_path, notebook, charts):
    _, results, _ = degraded_suite
    run = next(r for r in results if r.summary["notebook"] == notebook)
    report = run.folder / "report.html"
    html = report.read_text(encoding="utf-8")
    images = len(re.findall(r"<img\b", html))
    assert images == (charts or images) and images > 0
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html.split("</head>")[0])
    assert not re.search(r"""<(img|script|iframe|source|video|audio)\b[^>]*\bsrc\s*=\s*["']?(https?:)?//""", html)

    shot = tmp_path / f"{notebook}.png"
    _, asked = open_offline(report, tmp_path / "chromium-shot", screenshot=shot)
    assert asked == [], f"the report asked the network for {asked}"
    assert_screenshot_shows_something(shot)

    probed = tmp_path / "probed.html"
    # The report's CSP runs no script at all (tests/faults/test_fault_hostile_text.py); the probe is this test's own
    # script, so the probed copy allows inline script and keeps the rest of the policy (images from data: only).
    allowing = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    assert allowing != html, "report.html has no Content-Security-Policy"
    probed.write_text(allowing.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom, asked = open_offline(probed, tmp_path / "chromium-dom")
    decoded = json.loads(re.search(r'data-imsnb-images="([^"]*)"', dom)[1].replace("&quot;", '"'))
    assert len(decoded) == images
    assert all(complete and width > 0 and height > 0 for complete, width, height in decoded), decoded
    assert asked == []


def test_incident_index_opens_offline_with_every_report_linked(degraded_suite, tmp_path):
    outputs, results, _ = degraded_suite
    index = outputs / "INC-SUITE" / "index.html"
    shot = tmp_path / "index.png"
    _, asked = open_offline(index, tmp_path / "chromium-shot", screenshot=shot)
    assert asked == []
    assert_screenshot_shows_something(shot)
    dom, asked = open_offline(index, tmp_path / "chromium-dom")
    assert asked == []
    linked = set(re.findall(r'href="([^"]+/report\.html)"', dom))
    assert linked == {f"{r.folder.name}/report.html" for r in results}


# ---------------------------------------------------------------- what a person sees: width, alignment, the header

LAPTOP = (1366, 768)  # a laptop screen; the report pages are also checked at 1400 px, as the issue measured them


def shots_dir(tmp_path: Path) -> Path:
    """Where screenshots go: IMSNB_SCREENSHOTS (docs/img, to refresh the documentation's pictures) or tmp_path."""
    return Path(os.environ.get("IMSNB_SCREENSHOTS") or tmp_path)


def assert_readable(tables: list[dict], window: int) -> None:
    """Every table within the window or scrolling in its own box; numbers right-aligned, text left-aligned; a long
    text column at least 12em wide (never one word a line)."""
    for table in tables:
        assert table["right"] <= window + 1 or table["scrolls"], (table["heads"], table["right"])
        for cell in table["cells"]:
            text = cell["text"]
            if table["heads"][cell["column"]].endswith(("id", "ids")):
                assert cell["lines"] == 1, (table["heads"], cell)  # an id on one line
            elif re.fullmatch(r"-?[\d,]+(\.\d+)?( ?(ms|s|%|x|GiB|MiB))?", text):
                assert cell["align"] == "right", (table["heads"], cell)
            elif len(text) > 40:
                assert cell["align"] in ("left", "start"), (table["heads"], cell)
                words = len(text.split())  # never one word a line
                assert cell["width"] >= 12 * 14 and (cell["lines"] <= 2 or cell["lines"] < 0.6 * words), cell


def test_report_html_says_what_it_is_about_and_fits_the_window(degraded_suite, tmp_path):
    """The issue: report.html was 1,934 px wide in a 1,400 px window, its query column wrapped a word a line beside
    `4592.508857`, and it did not say which incident, notebook, targets or window it was about."""
    from browser import MEASURE_TABLES, browser

    _, results, _ = degraded_suite
    run = next(r for r in results if r.summary["notebook"] == "db_performance")
    report = run.folder / "report.html"
    for width in (1400, LAPTOP[0]):
        with browser(tmp_path / f"chromium-{width}", width=width, height=900) as page:
            page.open(report.as_uri())
            seen = page.evaluate(MEASURE_TABLES)
            about = page.evaluate("document.querySelector('header.about').innerText")
            if width == 1400:
                page.screenshot(shots_dir(tmp_path) / "report-html.png")
        assert seen["scrollWidth"] <= seen["innerWidth"] == width, seen["scrollWidth"]
        assert_readable(seen["tables"], width)
    assert about.startswith("Incident INC-SUITE: db_performance"), about
    window = run.summary["window"]
    for expected in (
        "incident\nINC-SUITE",
        "notebook\ndb_performance",
        "targets\nPostgreSQL 127.0.0.1:",
        "AWS us-east-1",
    ):
        assert expected in about, about
    assert f"window\n{window['start'][:10]} {window['start'][11:19]} – {window['end'][11:19]} UTC (30 min)" in about
    assert f"ran\n{run.summary['started_at'][:10]} " in about and "completed; worst finding" in about
    findings = next(t for t in seen["tables"] if t["heads"][:3] == ["severity", "check", "message"])
    assert findings["heads"] == ["severity", "check", "message", "value", "threshold", "period"]
    cells = [c["text"] for t in seen["tables"] for c in t["cells"]]
    unrounded = [t for t in cells if re.fullmatch(r"-?[1-9][\d,]*\.\d{3,}( ?\S+)?", t)]  # 4592.508857 was shown
    assert not unrounded and any(re.fullmatch(r"\d{1,3}(,\d{3})+", t) for t in cells), unrounded


def test_index_html_post_mortem_is_honest_and_fits_the_window(degraded_suite, tmp_path):
    """The post-mortem boxes took typing the next rewrite threw away: the page now shows postmortem.json,
    read-only, and says where to write it."""
    from browser import MEASURE_TABLES, browser

    outputs, _, _ = degraded_suite
    index = outputs / "INC-SUITE" / "index.html"
    with browser(tmp_path / "chromium", width=LAPTOP[0], height=900) as page:
        page.open(index.as_uri())
        seen = page.evaluate(MEASURE_TABLES)
        editable = page.evaluate("document.querySelectorAll('textarea, input, [contenteditable]').length")
        said = page.evaluate("document.body.innerText")
        page.screenshot(shots_dir(tmp_path) / "index-html.png")
        root_cause = "[...document.querySelectorAll('h3')].find(h => h.innerText.startsWith('Root cause'))"
        page.evaluate(f"{root_cause}.scrollIntoView()")
        page.screenshot(shots_dir(tmp_path) / "index-html-postmortem.png")
    assert editable == 0
    assert "write the post-mortem in postmortem.json in this folder" in " ".join(said.split())
    assert "Root cause\nnot written yet" in said
    assert seen["scrollWidth"] <= seen["innerWidth"], seen["scrollWidth"]
    assert_readable(seen["tables"], LAPTOP[0])


LAB_TARGET = Path(sys.prefix) / "jupyterlab"  # installed by `make .venv/.test-installed`, outside the test venv
NO_WINDOWING = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"}}


def test_the_findings_table_fits_a_laptop_in_jupyterlab(degraded_suite, tmp_path):
    """A real `imsnb lab` on a 1366x768 screen, the file browser open, showing db_performance as a run left it:
    the findings table fits the output area (no horizontal scrolling), the value column right-aligned, the message
    left-aligned and wrapping; the statements table's query column stays readable beside its numbers."""
    from browser import browser

    if not (LAB_TARGET / "jupyterlab").is_dir():
        pytest.fail(f"JupyterLab for this test is not in {LAB_TARGET}: run `make .venv/.test-installed`")
    from helpers import ROOT

    _, results, _ = degraded_suite
    run = next(r for r in results if r.summary["notebook"] == "db_performance")
    settings = tmp_path / "user-settings"
    for relative, value in NO_WINDOWING.items():  # every cell in the page, not only those scrolled to
        (settings / relative).parent.mkdir(parents=True, exist_ok=True)
        (settings / relative).write_text(json.dumps(value))
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{LAB_TARGET}",
        "JUPYTERLAB_DIR": str(LAB_TARGET / "share" / "jupyter" / "lab"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
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
        url = re.search(r"open (\S+)", ready)[1].replace("/lab?", "/lab/tree/db_performance_run.ipynb?")
        shutil.copy(run.folder / "notebook.ipynb", folder / "db_performance_run.ipynb")
        with browser(tmp_path / "chromium", width=LAPTOP[0], height=LAPTOP[1], offline=False) as page:
            page.open(url)
            try:
                page.wait_for(SCROLLED_TO_FINDINGS, timeout_s=120)
            except TimeoutError:
                page.screenshot(tmp_path / "never-rendered.png")
                raise AssertionError(f"no findings table in the lab: see {tmp_path / 'never-rendered.png'}") from None
            seen = page.evaluate(LAB_FINDINGS)
            page.wait_for(FINDINGS_AT_THE_TOP)
            page.screenshot(shots_dir(tmp_path) / "lab-findings.png")
    finally:
        os.killpg(lab.pid, signal.SIGINT)
        lab.wait(timeout=60)
    assert seen["sidebar"] > 150, "the file browser is open, as on a fresh lab"
    assert seen["table"] <= seen["area"] + 1 and seen["areaScroll"] <= seen["area"] + 1, seen
    assert seen["heads"] == ["severity", "check", "message", "value", "threshold", "period"], seen["heads"]
    assert set(seen["valueAlign"]) == {"right"} and set(seen["messageAlign"]) <= {"left", "start"}, seen
    assert set(seen["severityAlign"]) <= {"left", "start"}, seen
    assert seen["queryWidth"] >= 200, f"the query column is {seen['queryWidth']} px wide: one word a line"


# Scroll the notebook to its end (JupyterLab renders the cells in view) until the findings table is there.
SCROLLED_TO_FINDINGS = """
(() => {
  const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
  if (outer) outer.scrollTop = outer.scrollHeight;
  return !!document.querySelector('.jp-OutputArea-output table.imsnb-findings');
})()
"""

# The findings at the top of the notebook's view, and staying there (JupyterLab moves the view as outputs settle).
FINDINGS_AT_THE_TOP = """
(() => {
  const report = document.querySelector('.imsnb-report');
  const top = Math.round(report.getBoundingClientRect().top);
  if (top < 60 || top > 160) { report.scrollIntoView({block: 'start'}); window.imsnbTop = null; return false; }
  const stable = window.imsnbTop === top;
  window.imsnbTop = top;
  return stable;
})()
"""

# The findings table in JupyterLab: its width against its output area's, its alignment; the sidebar's width; the
# query column of the statements table.
LAB_FINDINGS = """
(() => {
  const t = document.querySelector('.jp-OutputArea-output table.imsnb-findings');
  const area = t.closest('.jp-OutputArea-output');
  const col = i => [...t.querySelectorAll('tbody tr')].map(r => getComputedStyle(r.children[i]).textAlign);
  const side = document.querySelector('#jp-left-stack');
  const queries = [...document.querySelectorAll('.jp-OutputArea-output table.imsnb-table')]
    .filter(q => [...q.querySelectorAll('th')].some(th => th.innerText.trim() === 'query'));
  const heads = queries.length ? [...queries[0].querySelectorAll('th')] : [];
  const qi = heads.findIndex(th => th.innerText.trim() === 'query');
  return {
    table: t.getBoundingClientRect().width, area: area.clientWidth, areaScroll: area.scrollWidth,
    heads: [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()),
    valueAlign: col(3), messageAlign: col(2), severityAlign: col(0),
    sidebar: side ? side.getBoundingClientRect().width : 0,
    queryWidth: qi < 0 ? 0 : queries[0].querySelector('tbody tr').children[qi].getBoundingClientRect().width,
  };
})()
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
