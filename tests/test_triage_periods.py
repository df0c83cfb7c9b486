"""health_check and triage judge the present, and every number says what period it covers.

Real runs on a `cache-pressure` sandbox: a Redis with a past of ~50,000 hits at ~99% and, now, a live miss storm and
live evictions. Each run gets a history store of its own, so no stored snapshot stands in for its sample.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import ORDER, finding, present_began, read_summary

from imsnb import triage
from imsnb.findings import Finding
from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox

pytestmark = pytest.mark.servers  # cache-pressure sandbox runs

SAMPLE_S = 4.0  # long enough for the load thread's storm (every 0.5 s) to give far more than 20 lookups
SCREENING = ("health_check", "triage")


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """health_check and triage, each with a sample and with sampling off; triage over an explicit 30-minute window.
    Returns the results by (notebook, sampled) and that window.

    Both windows begin after the sandbox's present began (its months of hits are its past): a window reaching back
    over the sandbox's start would hold that past too, since Redis started inside it (the window rule). Triage's
    window is the incident's first 30 minutes, still going on; health_check's is a duration of whole seconds."""
    out = tmp_path_factory.mktemp("screening")
    results = {}
    with Sandbox("cache-pressure") as sandbox, pytest.MonkeyPatch.context() as patch:
        began = present_began(sandbox)
        start = (began + timedelta(seconds=1)).replace(microsecond=0)
        end = start + timedelta(minutes=30)
        time.sleep(max(0.0, (start + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()))
        for key, value in sandbox.env().items():
            patch.setenv(key, value)
        for notebook in SCREENING:
            for sampled in (True, False):
                patch.setenv("IMSNB_HISTORY", str(out / f"{notebook}-{sampled}.sqlite"))  # nothing stored before
                params = {"sample_s": str(SAMPLE_S if sampled else 0)}
                if notebook == "triage":
                    params |= {"start": iso(start), "end": iso(end)}
                else:  # whole seconds back from the kernel's now: never before the present began
                    params |= {"window": f"{int((datetime.now(UTC) - start).total_seconds())}s"}
                result = run_notebook(notebook, params, incident_id="INC-PERIODS", outputs=out / "outputs")
                assert result.summary["status"] == "ok", result.summary.get("error")
                results[notebook, sampled] = result
    return results, (start, end)


def lifetime_rate(message: str) -> float:
    """The lifetime hit rate a sampled one is set against: "...; 99.1% of 1,234,567 lookups since Redis started"."""
    return float(re.search(r"; (\d+\.\d)% of [\d,]+ lookups since Redis started", message)[1]) / 100


@pytest.mark.parametrize("notebook", SCREENING)
def test_a_live_miss_storm_is_judged_on_the_sample_not_the_months_of_hits(runs, notebook):
    summary = read_summary(runs[0][notebook, True].folder)
    hit = finding(summary, "cache.hit_rate")
    assert ORDER.index(hit["severity"]) >= ORDER.index("WARNING"), hit
    assert hit["value"] < 0.8 and hit["period"]["basis"] == "sample"
    assert hit["period"]["seconds"] >= SAMPLE_S and hit["message"].startswith(f"hit rate {hit['value']:.1%}, ")
    assert lifetime_rate(hit["message"]) > 0.9, "the since-restart rate is there, as context"
    evictions = finding(summary, "cache.evictions")
    assert ORDER.index(evictions["severity"]) >= ORDER.index("WARNING") and evictions["value"] > 0
    assert evictions["period"]["basis"] == "sample"


@pytest.mark.parametrize("notebook", SCREENING)
def test_without_a_sample_lifetime_totals_are_context_at_most_info(runs, notebook):
    summary = read_summary(runs[0][notebook, False].folder)
    hit = finding(summary, "cache.hit_rate")
    assert hit["severity"] in ("OK", "INFO") and hit["period"]["basis"] == "since restart"
    assert "sampling off (sample_s=0)" in hit["period"]["note"] and hit["value"] > 0.9, "the lifetime rate itself"
    shown = re.match(r"hit rate ([\d.]+)%, ", hit["message"])  # the value is kept to 4 places, the text to 0.1%
    assert shown and abs(float(shown[1]) / 100 - hit["value"]) <= 0.0006, (hit["message"], hit["value"])
    assert "since Redis started" not in hit["message"]
    assert hit["period"]["from"] is not None, "Redis's uptime says since when"
    evictions = finding(summary, "cache.evictions")
    assert evictions["value"] > 1000, "the storm's evictions are in the lifetime count (an ERROR if judged)"
    assert evictions["severity"] == "INFO" and evictions["period"]["basis"] == "since restart"
    assert "context only" in evictions["message"] and "ERROR on lifetime totals" in evictions["message"]


def test_cloudwatch_and_prometheus_findings_cover_the_window_queried(runs):
    results, (start, end) = runs
    summary = read_summary(results["triage", True].folder)
    assert summary["window"] == {"start": iso(start), "end": iso(end)}, "the run folder describes itself"
    for check in ("aws.rds.cpu", "aws.rds.free_storage", "api.request_rate", "api.error_rate", "api.p95_latency"):
        period = finding(summary, check)["period"]
        assert period["basis"] == "window", check
        assert (instant(period["from"]), instant(period["to"])) == (start, end), check
        assert period["seconds"] == 1800
    assert "CloudWatch, 60 s datapoints" in finding(summary, "aws.rds.cpu")["period"]["note"]


def test_the_key_metrics_table_says_the_period_and_still_points_to_the_follow_ups(runs):
    result = runs[0]["triage", True]
    summary = read_summary(result.folder)
    executed = json.loads((result.folder / "notebook.ipynb").read_text())
    table = next(
        "".join(out["data"]["text/html"])
        for cell in executed["cells"]
        for out in cell.get("outputs", [])
        if "Replication lag" in "".join(out.get("data", {}).get("text/html", ""))
    )
    assert ">period</th>" in table and ", window</td>" in table  # the window ends in the future: "30 min to ..."
    severities = re.findall(r"<td[^>]*>(OK|INFO|WARNING|ERROR|CRITICAL)</td>", table)
    assert max(severities, key=ORDER.index) == summary["severity"]
    suggested = triage.suggested_notebooks([Finding.from_dict(f) for f in summary["findings"]])
    assert "redis_cache" in suggested
    assert "imsnb run redis_cache --incident INC-PERIODS" in (result.folder / "report.html").read_text()


def test_health_check_records_the_window_it_used(runs):
    summary = read_summary(runs[0]["health_check", True].folder)
    start, end = instant(summary["window"]["start"]), instant(summary["window"]["end"])
    assert end - start == timedelta(seconds=int(summary["parameters"]["window"].removesuffix("s")))
    assert end >= instant(summary["started_at"]), "the kernel's 'now', not a guess from the parameters"
