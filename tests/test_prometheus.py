"""imsnb.prometheus against the sandbox's real Prometheus server and the history promtool backfilled into it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from imsnb import prometheus
from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.findings import Findings, Severity
from imsnb.sandbox.postgres import free_port
from imsnb.sandbox.prometheus import PrometheusServer, Traffic
from imsnb.sandbox.scenarios import TRAFFIC
from imsnb.window import Window


@pytest.fixture(scope="module")
def prom(degraded):
    return prometheus.Prometheus(degraded.prometheus.url)


def _in_spike(degraded) -> Window:
    """The spike as backfilled: from 5 minutes after its start (the 5-minute rates have settled) to now."""
    start = datetime.fromtimestamp(degraded.prometheus.spike_start, UTC) + timedelta(minutes=5)
    return Window(start, datetime.now(UTC))


def _before_spike(degraded) -> Window:
    """Five hours of normal traffic that end well before the spike started."""
    end = datetime.fromtimestamp(degraded.prometheus.spike_start, UTC) - timedelta(minutes=10)
    return Window(end - timedelta(hours=5), end)


def test_error_rate_shows_the_backfilled_spike_and_low_before_it(prom, degraded):
    spike = prometheus.error_rate(_in_spike(degraded), prom=prom)
    before = prometheus.error_rate(_before_spike(degraded), prom=prom)
    assert len(spike) >= 30 and len(before) >= 250
    assert spike["value"].min() == pytest.approx(0.02, rel=0.02)  # db-degradation: 2% of requests fail
    assert before["value"].max() == pytest.approx(0.0002, rel=0.05)  # 0.02%, the 404s not counted
    assert list(spike.columns) == ["timestamp", "metric", "value", "requests"] and set(spike["metric"]) == {
        "error_rate"
    }
    assert spike["requests"].notna().all() and (spike["requests"] > 0).all()  # the volume each rate rests on
    assert str(spike["timestamp"].dt.tz) == "UTC"

    assert prometheus.error_rate_finding(spike).severity == Severity.ERROR  # 1% and over; CRITICAL from 5%
    calm = prometheus.error_rate_finding(before)
    assert calm.severity == Severity.OK and calm.value == pytest.approx(0.0002, rel=0.05)


def test_p95_latency_and_request_rate_over_the_spike(prom, degraded):
    slow = prometheus.p95_latency(_in_spike(degraded), prom=prom)
    normal = prometheus.p95_latency(_before_spike(degraded), prom=prom)
    # histogram_quantile interpolates in the bucket: 1 + (0.95 - 0.80) / 0.17 * 1.5 s; 0.1 + 0.10 / 0.12 * 0.15 s
    assert slow["value"].median() == pytest.approx(2323.5, abs=2)
    assert normal["value"].median() == pytest.approx(225.0, abs=1)
    finding = prometheus.p95_latency_finding(slow)
    assert finding.check == "api.p95_latency" and finding.severity == Severity.ERROR and finding.unit == "ms"
    assert prometheus.p95_latency_finding(normal).severity == Severity.OK

    rate = prometheus.request_rate(_before_spike(degraded), prom=prom)
    assert rate["value"].median() == pytest.approx(TRAFFIC["db-degradation"].requests_per_s, rel=0.01)
    steady = prometheus.request_rate_finding(rate)
    assert steady.severity == Severity.OK and steady.unit == "req/s"


def test_history_reaches_back_hours_and_the_live_scrape_continues_it(prom, degraded):
    server = degraded.prometheus
    first = prometheus.query_range(
        'http_requests_total{status="200"}',
        Window(datetime.now(UTC) - timedelta(hours=9), datetime.now(UTC)),
        prom=prom,
    )
    assert first["timestamp"].min() <= datetime.now(UTC) - timedelta(hours=7, minutes=50)
    # samples newer than the backfill come from scrapes of the sandbox's exporter (every 15 s): wait for one
    deadline = time.monotonic() + 60
    while True:
        recent = prometheus.query_range(
            "timestamp(http_requests_total)",
            Window(datetime.now(UTC) - timedelta(minutes=2), datetime.now(UTC)),
            step_s=15,
            prom=prom,
        )
        if not recent.empty and recent["value"].max() > server.history_end:
            break
        assert time.monotonic() < deadline, "no scrape landed within 60 s"
        time.sleep(1)


@pytest.mark.servers  # a Prometheus of its own
def test_a_healthy_history_has_no_spike_and_stop_cleans_up():
    with PrometheusServer(Traffic()) as server:
        data_dir, process = server.dir, server.process
        prom = prometheus.Prometheus(server.url)
        last_hours = Window(datetime.now(UTC) - timedelta(hours=6), datetime.now(UTC))
        errors = prometheus.error_rate(last_hours, prom=prom)
        assert errors["value"].max() < 0.001
        assert prometheus.p95_latency_finding(prometheus.p95_latency(last_hours, prom=prom)).severity == Severity.OK
        assert server.spike_start is None
    assert process.returncode is not None and not data_dir.exists()
    with pytest.raises(Unreachable):
        prometheus.Prometheus(server.url, timeout_s=2).get("query", {"query": "up"})  # the server is gone


def test_a_closed_port_is_unreachable_and_remembered():
    prom = prometheus.Prometheus(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    span = Window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    with pytest.raises(Unreachable) as caught:
        prometheus.error_rate(span, prom=prom)
    assert caught.value.check == "prometheus.reachable" and "refused" in str(caught.value).lower()
    with pytest.raises(Unreachable):  # remembered: no second wait
        prometheus.p95_latency(span, prom=prom)

    findings = Findings()
    for check in ("api.error_rate", "api.p95_latency"):
        with findings.section(check):
            prometheus.error_rate(span, prom=prom)
    assert [(f.check, f.severity) for f in findings] == [("prometheus.reachable", Severity.CRITICAL)]
    assert prometheus.reachable_finding(prom).severity == Severity.CRITICAL


def test_no_url_is_not_configured(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    prom = prometheus.Prometheus()
    findings = Findings()
    with findings.section("api.error_rate"):
        prometheus.error_rate(Window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)), prom=prom)
    assert [(f.check, f.severity) for f in findings] == [("prometheus.configured", Severity.INFO)]
    with pytest.raises(NotConfigured):
        prom.get("query", {"query": "up"})


def test_a_bad_query_or_wrong_metric_names(prom, degraded, monkeypatch):
    span = Window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    with pytest.raises(NotAvailable, match="refused the query"):
        prometheus.query_range("sum(rate(", span, prom=prom)
    monkeypatch.setenv("IMSNB_PROM_REQUESTS_METRIC", "ims_requests_total")  # not a series this server has
    empty = prometheus.error_rate(span, prom=prom)
    assert empty.empty
    finding = prometheus.error_rate_finding(empty)
    assert finding.severity == Severity.INFO and "IMSNB_PROM_" in finding.message
    monkeypatch.setenv("IMSNB_PROM_REQUESTS_METRIC", "http_requests_total")
    monkeypatch.setenv("IMSNB_PROM_SELECTOR", 'job="ims-api"')
    assert 'http_requests_total{job="ims-api",status=~"5.."}' in prometheus.promql(prometheus.ERROR_RATE)
    assert not prometheus.error_rate(span, prom=prom).empty
