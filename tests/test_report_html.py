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
