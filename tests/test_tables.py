"""imsnb.tables: tables as people read them (headers in words, numbers rounded and right-aligned, text left-aligned
and wrapping, `—` for missing), and the findings table built on it (imsnb.report). Browsers measure the result in
test_reports_offline.py; here, what the HTML and text say."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from imsnb import tables
from imsnb.findings import Finding
from imsnb.report import bundle, findings_table, render_html, render_text

QUERY = "SELECT id, price FROM items WHERE sku = $1 AND status IN ($2, $3) ORDER BY created_at DESC LIMIT 10"


def test_headers_are_words_with_their_unit():
    assert tables.header_text("mean_exec_time_ms") == "mean exec time (ms)"
    assert tables.header_text("xact_age_s") == "transaction age (s)"
    assert tables.header_text("hit_ratio") == "hit ratio"
    assert tables.header_text("queryid") == "query id"
    assert tables.header_text("allocated_gib") == "allocated (GiB)"


def test_numbers_are_rounded_with_thousands_separators():
    assert tables.number_text(4592.508857) == "4,593"
    assert tables.number_text(45.914) == "45.91"
    assert tables.number_text(0.0016583) == "0.00166"
    assert tables.number_text(np.int64(3_500_000)) == "3,500,000"
    assert tables.number_text(95.0) == "95"
    assert tables.value_text(0.8667, "ratio") == "86.7%"
    assert tables.value_text(2888.4, "x") == "2,888x"
    assert tables.value_text(358.4, "s") == "358 s"
    assert tables.value_text(None, "s") == tables.MISSING


def test_a_table_aligns_numbers_right_and_text_left_and_says_what_is_missing():
    frame = pd.DataFrame(
        {
            "queryid": [np.int64(-765506934660039790), np.int64(42)],
            "calls": [274, 3],
            "mean_ms": [4592.508857, None],
            "query": [QUERY, "SELECT 1"],
            "seen_at": [datetime(2026, 12, 2, 17, 59, 58, 560224, tzinfo=UTC), pd.NaT],
        }
    )
    page = tables.table_html(frame)
    heads = re.findall(r"<th style='([^']*)'>([^<]*)</th>", page)
    assert [h for _, h in heads] == ["query id", "calls", "mean (ms)", "query", "seen at"]
    cells = re.findall(r"<td style='([^']*)'>([^<]*)</td>", page)
    shown = dict(zip(["queryid", "calls", "mean", "query", "seen"], cells[:5], strict=True))
    assert shown["queryid"][1] == "-765506934660039790" and "nowrap" in shown["queryid"][0]  # an id, whole
    assert shown["mean"][1] == "4,593" and "text-align:right" in shown["mean"][0]
    assert shown["calls"][1] == "274" and "text-align:right" in shown["calls"][0]
    assert shown["query"][1] == QUERY.replace("$", "$") and "text-align:left" in shown["query"][0]
    assert "min-width:18em" in shown["query"][0], "a long text column keeps a readable width"
    assert shown["seen"][1] == "2026-12-02 17:59:58 UTC"
    assert [c for _, c in cells[5:]] == ["42", "3", "—", "SELECT 1", "—"]
    assert "table-layout:auto" in page  # JupyterLab fixes the layout, which squeezed text a word a line
    text = tables.table_text(frame)
    assert "mean (ms)" in text and "4,593" in text and "—" in text


def test_the_findings_table_puts_the_message_early_and_lists_skipped_targets_apart():
    findings = [
        Finding.of("postgres.connections_used", "WARNING", "25 of 30 connections in use (83%)",
                   value=0.8333, threshold=0.8, unit="ratio"),
        Finding.of("cache.configured", "INFO", "no Redis target: set REDIS_URL: skipped"),
        Finding.of("postgres.blocked_queries", "ERROR", "1 session(s) wait", value=358.4, threshold=1,
                   unit="s"),
    ]  # fmt: skip
    table = findings_table(findings)
    assert list(table.columns) == ["severity", "check", "message", "value", "threshold", "period"]
    assert list(table["check"]) == ["postgres.blocked_queries", "postgres.connections_used"]
    assert list(table["value"]) == ["358 s", "83.3%"] and list(table["threshold"]) == ["1 s", "80%"]
    page = render_html(findings, bundle(findings))
    assert "Not checked (no target configured):</b> no Redis target: set REDIS_URL" in page
    assert "cache.configured" not in page and "width:100%" in page
    text = render_text(findings, bundle(findings))
    assert text.splitlines()[1] == "  Not checked (no target configured): no Redis target: set REDIS_URL"
    assert "cache.configured" not in text
