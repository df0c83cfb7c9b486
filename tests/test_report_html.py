"""report.html: the verdict first, the evidence after in the notebook's order, no script, nothing fetched."""

from __future__ import annotations

from imsnb.bundles import ACTIONS_MIME, FINDINGS_MIME
from imsnb.runs.html import CSP, render_report


def notebook() -> dict:
    def code(*outputs: dict, source: str = "x = 1") -> dict:
        return {"cell_type": "code", "source": source, "outputs": list(outputs)}

    return {
        "cells": [
            {"cell_type": "markdown", "source": "# Database performance\n\nWhen to use: slow queries."},
            code({"output_type": "stream", "name": "stdout", "text": "\x1b[31mred\x1b[0m <b>not bold</b>\n"}),
            code({"output_type": "display_data", "data": {"text/markdown": "**t** <script>alert(1)</script>"}}),
            code({"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<chart>"}}),
            code({"output_type": "display_data", "data": {ACTIONS_MIME: {}, "text/html": "<p>PLAN-TABLE</p>"}}),
            code({"output_type": "error", "ename": "E", "evalue": "boom", "traceback": ["\x1b[1mTrace\x1b[0m"]}),
            code({"output_type": "display_data", "data": {FINDINGS_MIME: {}, "text/html": "<p>FINDINGS-TABLE</p>"}}),
        ]
    }


def test_the_verdict_comes_first_and_the_evidence_follows_in_order():
    page = render_report(notebook())
    assert page.index("FINDINGS-TABLE") < page.index("PLAN-TABLE") < page.index("red")
    assert page.index('id="verdict"') < page.index("<main>") < page.index("red") < page.index("Trace")
    assert page.count("FINDINGS-TABLE") == 1 and "shown at the top" in page
    assert "<title>Database performance</title>" in page


def test_data_is_text_and_the_page_runs_no_script():
    page = render_report(notebook())
    assert f'content="{CSP}"' in page and "default-src 'none'" in CSP
    assert "<script>" not in page and "&lt;script&gt;" in page, "markdown from data is escaped"
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "\x1b" not in page, "streams escaped, ANSI stripped"
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in page and "http" not in page.split("<main>")[1]
    assert 'class="mathjax_ignore"' in page


SUMMARY = {
    "incident_id": "INC-42",
    "notebook": "db_performance",
    "targets": ["PostgreSQL db.internal:5432/ims as imsnb_monitor", "AWS us-east-1"],
    "window": {"start": "2026-12-02T17:00:34Z", "end": "2026-12-02T18:00:34Z"},
    "started_at": "2026-12-02T18:00:34Z",
    "duration_s": 11.04,
    "status": "ok",
    "severity": "ERROR",
}


def test_the_page_opens_with_what_it_is_about():
    """The incident, the notebook, where it looked, over which window, when it ran and how that went: first."""
    page = render_report(notebook(), summary=SUMMARY)
    about = page.split('<header class="about">')[1].split("</header>")[0]
    assert page.index('<header class="about">') < page.index('id="verdict"')
    assert "<h1>Incident INC-42: db_performance</h1>" in about
    for shown in (
        "<dt>notebook</dt><dd>db_performance (Database performance)</dd>",
        "<dt>targets</dt><dd>PostgreSQL db.internal:5432/ims as imsnb_monitor; AWS us-east-1</dd>",
        "<dt>window</dt><dd>2026-12-02 17:00:34 – 18:00:34 UTC (60 min)</dd>",
        "<dt>ran</dt><dd>2026-12-02 18:00:34 UTC, 11.0 s: completed; worst finding ERROR</dd>",
    ):
        assert shown in about, about
    assert "<title>INC-42 · db_performance · Database performance</title>" in page


def test_an_action_plan_is_a_readable_table_its_status_first():
    plan = {"title": "Mitigation", "keys": {}, "actions": [
        {"action": "terminate_backend", "target": "pid 4242", "reason": "idle in transaction for 46 s",
         "status": "planned", "command": "SELECT pg_terminate_backend(4242)", "approver": None, "id": "x"},
    ]}  # fmt: skip
    nb = {"cells": [{"cell_type": "code", "source": "", "outputs": [{"output_type": "display_data", "data": {
        ACTIONS_MIME: plan, "text/plain": "Mitigation. Plan only, nothing was changed: both keys are missing.\n...",
        "text/html": "<table class='dataframe'></table>"}}]}]}  # fmt: skip
    page = render_report(nb)
    assert "<p>Mitigation. Plan only, nothing was changed: both keys are missing.</p>" in page
    heads = page.split("<thead>")[1].split("</thead>")[0]
    assert [h for h in heads.split("'>")[1:]][0].startswith("status<") and "approver" not in heads
    assert "class='dataframe'" not in page
