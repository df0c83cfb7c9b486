"""The API's request rate, error rate and p95 latency from Prometheus's HTTP API (PromQL range queries).

One `Prometheus` session per run (PROMETHEUS_URL), standard library HTTP with a deadline and a size cap on every
request, GET only: nothing here writes. A server that does not answer is remembered, so later sections fail at
once with the same `prometheus.reachable` finding instead of waiting out the timeout again.

Metric names follow the common instrumentation libraries and are configurable (imsnb.config.PROMETHEUS_NAMES):
`http_requests_total{status="..."}` and the histogram `http_request_duration_seconds_bucket{le="..."}`.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from typing import Any

import pandas as pd

from imsnb import config, deadline
from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.findings import Finding, Severity, judge, threshold
from imsnb.findings.confidence import judge_ratio, wilson_interval
from imsnb.period import Period, frame_period, tag
from imsnb.session import LazySession
from imsnb.window import Window, parse_duration

TIMEOUT_S = 10.0  # for each whole request (a server trickling its answer is cut off at it)
MAX_REPLY_BYTES = 16 * 2**20  # 300 points a series: far more than any query here returns
MAX_POINTS = 300  # per series: a readable chart, far under Prometheus's 11,000-point limit
MIN_STEP_S = 60
RATE_WINDOW = "5m"
COLUMNS = ["timestamp", "metric", "value"]

# {requests}, {duration}: metric names; {match}: the selector's label matchers, with a trailing comma if any.
REQUEST_RATE = "sum(rate({requests}{{{match}}}[{rate_window}]))"
ERROR_RATE = (
    'sum(rate({requests}{{{match}{status}=~"5.."}}[{rate_window}]))\n/\nsum(rate({requests}{{{match}}}[{rate_window}]))'
)
# Requests counted in each point's rate window: the volume an error rate rests on (judged with its uncertainty).
REQUEST_COUNT = "sum(increase({requests}{{{match}}}[{rate_window}]))"
P95_LATENCY = "histogram_quantile(0.95, sum by (le) (rate({duration}{{{match}}}[{rate_window}])))"
BUILD_INFO = "prometheus_build_info"


class Prometheus(LazySession):
    """One Prometheus server for a run; a failure to reach it is remembered and raised again at once."""

    @classmethod
    def interactive(cls) -> Prometheus:
        return cls()

    def __init__(self, url: str | None = None, *, timeout_s: float = TIMEOUT_S):
        self._url = url
        self.timeout_s = timeout_s
        super().__init__()

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = config.prometheus_url()
        return self._url

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """GET /api/v1/<path> and return its `data`; network failures raise Unreachable, a refused query
        NotAvailable (with Prometheus's own error message)."""
        self.raise_if_failed()
        try:
            url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        except NotConfigured as exc:
            raise self.fail(exc) from None
        reply = deadline.get(
            url, timeout_s=self.timeout_s, max_bytes=MAX_REPLY_BYTES, headers={"Accept": "application/json"}
        )
        if reply.error:
            raise self._remember(reply.error)
        body = reply.body
        if reply.status is not None and reply.status >= 300:
            error = _error_text(body) or f"HTTP {reply.status}"
            if reply.status in (400, 422):  # a bad query: the server is fine
                raise NotAvailable(f"Prometheus refused the query: {error}", "check the IMSNB_PROM_* names")
            raise self._remember(error)
        if reply.truncated:  # not remembered: a narrower query still works
            raise NotAvailable(
                f"Prometheus's answer is larger than {MAX_REPLY_BYTES // 2**20} MB: not read",
                "narrow the window or add label matchers (IMSNB_PROM_SELECTOR)",
            )
        try:
            payload = json.loads(body)
        except ValueError:
            raise self._remember("the reply is not JSON: is PROMETHEUS_URL a Prometheus server?") from None
        if payload.get("status") != "success":
            raise NotAvailable(f"Prometheus refused the query: {payload.get('error')}", "check the query")
        return payload.get("data")

    def _remember(self, reason: str) -> Unreachable:
        return self.fail(Unreachable(f"prometheus {self._url}", reason, check="prometheus.reachable"))


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error") or "")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def default_prometheus() -> Prometheus:
    """The server used when a query is made without one (interactive use)."""
    return Prometheus.default()


def step_for(window: Window, points: int = MAX_POINTS) -> int:
    """Seconds between points: at least a minute, at most `points` per series over the window."""
    return max(MIN_STEP_S, math.ceil(window.seconds / points))


def query_range(
    promql: str, window: Window, *, step_s: int | None = None, name: str | None = None, prom: Prometheus | None = None
) -> pd.DataFrame:
    """A PromQL range query over `window`: columns timestamp (UTC), metric (`name`, or the series' labels), value;
    the frame carries the span queried (`imsnb.period.frame_period`), which the judges below put on their finding."""
    step = step_s or step_for(window)
    data = Prometheus.or_default(prom).get(
        "query_range",
        {
            "query": promql,
            "start": f"{window.start.timestamp():.3f}",
            "end": f"{window.end.timestamp():.3f}",
            "step": str(step),
            "timeout": f"{Prometheus.or_default(prom).timeout_s:g}s",  # the server gives up evaluating too
        },
    )
    rows = []
    for result in (data or {}).get("result", []):
        labels = result.get("metric", {})
        label = name or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value"
        for stamp, value in result.get("values", []):
            rows.append((pd.Timestamp(float(stamp), unit="s", tz="UTC"), label, float(value)))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = frame["value"].astype(float)
    frame = frame.sort_values(["metric", "timestamp"]).reset_index(drop=True)
    return tag(frame, Period(window.start, window.end, "window", f"Prometheus, a point every {step} s"))


def promql(template: str, rate_window: str = RATE_WINDOW) -> str:
    """A query constant with the configured metric names and selector filled in."""
    selector = config.prometheus_name("selector").strip().strip(",")
    return template.format(
        requests=config.prometheus_name("requests_metric"),
        duration=config.prometheus_name("duration_metric"),
        status=config.prometheus_name("status_label"),
        match=f"{selector}," if selector else "",
        rate_window=rate_window,
    )


def request_rate(window: Window, *, prom: Prometheus | None = None, rate_window: str = RATE_WINDOW) -> pd.DataFrame:
    """Requests per second to the API over the window (metric `request_rate`)."""
    return query_range(promql(REQUEST_RATE, rate_window), window, name="request_rate", prom=prom)


def error_rate(window: Window, *, prom: Prometheus | None = None, rate_window: str = RATE_WINDOW) -> pd.DataFrame:
    """Share of requests answered 5xx over the window, as a ratio (metric `error_rate`), and beside each point the
    requests counted in its `rate_window` (`requests`) and that window in seconds (attrs `rate_window_s`): the
    volume the judge weighs the rate by."""
    rates = query_range(promql(ERROR_RATE, rate_window), window, name="error_rate", prom=prom)
    counts = query_range(promql(REQUEST_COUNT, rate_window), window, name="requests", prom=prom)
    volume = counts.set_index("timestamp")["value"]
    frame = rates.assign(requests=rates["timestamp"].map(volume).astype(float))
    frame = tag(frame, frame_period(rates)) if frame_period(rates) is not None else frame
    frame.attrs["rate_window_s"] = parse_duration(rate_window).total_seconds()
    return frame


def p95_latency(window: Window, *, prom: Prometheus | None = None, rate_window: str = RATE_WINDOW) -> pd.DataFrame:
    """95th percentile response time in ms over the window, from the duration histogram (metric `p95_latency`)."""
    frame = query_range(promql(P95_LATENCY, rate_window), window, name="p95_latency", prom=prom)
    frame["value"] = frame["value"] * 1000
    return frame


def reachable_finding(prom: Prometheus | None = None) -> Finding:
    """OK with the server's version, or CRITICAL (unreachable) / INFO (not configured); never raises."""
    prom = Prometheus.or_default(prom)
    try:
        data = prom.get("query", {"query": BUILD_INFO})
    except (Unreachable, NotConfigured) as exc:
        return Finding.unusable(exc, "prometheus")
    except NotAvailable as exc:
        return Finding.of("prometheus.reachable", Severity.WARNING, str(exc))
    versions = {r.get("metric", {}).get("version") for r in (data or {}).get("result", [])} - {None}
    return Finding.ok(
        "prometheus.reachable",
        f"connected to Prometheus at {prom.url}" + (f" ({', '.join(sorted(versions))})" if versions else ""),
    )


# --- findings ---------------------------------------------------------------------------------------------------


def _no_data(check: str, metric: str, unit: str, period: Period | None) -> Finding:
    return Finding.of(
        check,
        Severity.INFO,
        f"no {metric} samples in the window: is the API scraped, and are the IMSNB_PROM_* names right?",
        threshold=threshold(check).warning if check in ("api.error_rate", "api.p95_latency") else None,
        unit=unit,
        period=period,
    )


def _clean(frame: pd.DataFrame) -> pd.Series:
    values = frame.set_index("timestamp")["value"]
    return values[values.notna() & ~values.isin([math.inf, -math.inf])]


def error_rate_finding(frame: pd.DataFrame) -> Finding:
    """The window's worst 5-minute error rate against the runbook's 0.1%, with when it peaked and the latest.

    With the requests behind each point (`requests`, from `error_rate`) a point escalates only when the lower bound
    of its 95% interval is over the level (`imsnb/findings/confidence.py`): one failed request in a dozen at 3 AM is
    "too little traffic to judge", INFO with its counts. Without them the observed peak is judged."""
    values = _clean(frame)
    if values.empty:
        return _no_data("api.error_rate", "error rate", "ratio", frame_period(frame))
    peak, latest = float(values.max()), float(values.iloc[-1])
    limit = threshold("api.error_rate").warning
    above = int((values >= limit).sum())
    message = (
        f"5xx error rate peaked at {peak:.2%} ({values.idxmax():%H:%M} UTC), now {latest:.2%}, mean "
        f"{values.mean():.2%}; {above} of {len(values)} points at or above {limit:.1%}"
    )
    point = _cautious_point(frame)
    if point is None:
        return judge("api.error_rate", round(peak, 5), message, period=frame_period(frame))
    errors, requests, at = point
    return judge_ratio(
        "api.error_rate",
        errors,
        requests,
        f"{message}; judged at {at:%H:%M} UTC: {errors:,.0f} 5xx of {requests:,.0f} requests",
        nouns=("requests", "5xx"),
        seconds=frame.attrs.get("rate_window_s"),
        value=round(peak, 5),
        period=frame_period(frame),
    )


def _cautious_point(frame: pd.DataFrame) -> tuple[float, float, pd.Timestamp] | None:
    """(errors, requests, when) of the point whose error rate's lower 95% bound is highest (None without counts)."""
    if "requests" not in frame:
        return None
    points = frame[frame["value"].notna() & frame["requests"].notna() & (frame["requests"] >= 1)]
    points = points[~points["value"].isin([math.inf, -math.inf])]
    if points.empty:
        return None
    best = None
    for row in points.itertuples(index=False):
        requests = float(row.requests)
        errors = min(max(float(row.value), 0.0), 1.0) * requests
        low = wilson_interval(errors, requests)[0]
        if best is None or low > best[0]:
            best = (low, errors, requests, row.timestamp)
    return best[1], best[2], best[3]


def p95_latency_finding(frame: pd.DataFrame) -> Finding:
    """The window's worst p95 response time against the runbook's 500 ms."""
    values = _clean(frame)
    if values.empty:
        return _no_data("api.p95_latency", "request duration", "ms", frame_period(frame))
    peak, latest = float(values.max()), float(values.iloc[-1])
    return judge(
        "api.p95_latency",
        round(peak, 1),
        f"p95 response time peaked at {peak:.0f} ms ({values.idxmax():%H:%M} UTC), now {latest:.0f} ms, "
        f"median {values.median():.0f} ms",
        period=frame_period(frame),
    )


def request_rate_finding(frame: pd.DataFrame, *, steady_ratio: float = 0.5) -> Finding:
    """The runbook only says "steady": OK when the rate stays within `steady_ratio` of its median, else INFO
    (no threshold to judge against, so never more)."""
    values = _clean(frame)
    if values.empty:
        return _no_data("api.request_rate", "request", "req/s", frame_period(frame))
    median, low, high = float(values.median()), float(values.min()), float(values.max())
    steady = median > 0 and low >= median * (1 - steady_ratio) and high <= median * (1 + steady_ratio)
    return Finding.of(
        "api.request_rate",
        Severity.OK if steady else Severity.INFO,
        f"{median:.1f} req/s median, between {low:.1f} and {high:.1f}"
        + ("" if steady else f": not steady (beyond ±{steady_ratio:.0%} of the median)"),
        value=round(median, 2),
        threshold="steady",
        unit="req/s",
        period=frame_period(frame),
    )
