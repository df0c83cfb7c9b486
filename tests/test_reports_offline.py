"""Archived reports are self-contained: opened in headless Chromium with the network off, every chart decodes
and the page asks for nothing over the network (Chromium's own NetLog is the witness). Screenshots are kept
under each test's tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
