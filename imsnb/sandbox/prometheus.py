"""A private Prometheus server (the Debian package's binary) holding hours of the IMS API's request history.

History is written before the server starts: the scenario's traffic as OpenMetrics text, turned into TSDB blocks
by `promtool tsdb create-blocks-from openmetrics` and placed in the server's fresh data dir. From then on the
server scrapes a small exporter (a thread here) that continues the same counters live, so a sandbox left running
for hours still shows the scenario's rates at "now".

With prometheus 2.42 (Debian 12): the OpenMetrics text ends with `# EOF` and keeps each family's samples together;
the blocks are in the data dir before the server starts, so the history answers from the first query; the history
stops at start time, before any scraped sample, and its series carry the labels the scrapes get (honor_labels),
so each counter is one continuous series rather than a reset. promtool and start-up take ~0.4 s together.

The series are the usual instrumentation names: `http_requests_total{status=...}` and the histogram
`http_request_duration_seconds` (`_bucket{le=...}`, `_count`, `_sum`), labelled job="ims-api".
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from imsnb.sandbox.postgres import free_port
from imsnb.shutdown import stop_process

JOB = "ims-api"
INSTANCE = "ims-api-1"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Cumulative share of requests at or under each bucket's bound (then +Inf = 1).
# Normal: p95 interpolates to ~225 ms (runbook: < 500 ms). Slow (the database dragging requests): p95 ~2.3 s.
NORMAL_LATENCY = (0.60, 0.85, 0.97, 0.99, 0.999, 1.0, 1.0, 1.0)
SLOW_LATENCY = (0.20, 0.35, 0.50, 0.65, 0.80, 0.97, 0.995, 1.0)
CLIENT_ERROR_SHARE = 0.01  # 404s: not server errors, must not count in the error rate
SCRAPE_INTERVAL_S = 15


@dataclass(frozen=True)
class Traffic:
    """The API's traffic over the sandbox's history; the spike (if any) covers the last `spike` and is ongoing."""

    requests_per_s: float = 40.0
    error_ratio: float = 0.0002  # 5xx share outside the spike (runbook: < 0.1%)
    latency: tuple[float, ...] = NORMAL_LATENCY
    spike: timedelta | None = None
    spike_error_ratio: float | None = None
    spike_latency: tuple[float, ...] | None = None
    history: timedelta = timedelta(hours=8)
    step_s: int = 60

    def shares(self, in_spike: bool) -> tuple[float, tuple[float, ...]]:
        """(5xx share, cumulative latency shares) in or out of the spike."""
        if in_spike:
            return (
                self.error_ratio if self.spike_error_ratio is None else self.spike_error_ratio,
                self.spike_latency or self.latency,
            )
        return self.error_ratio, self.latency


class _Counters:
    """Every series' counter value at a time: the integral of the (piecewise constant) traffic since `origin`."""

    def __init__(self, traffic: Traffic, origin: float, spike_start: float | None):
        self.traffic = traffic
        self.origin = origin
        self.spike_start = spike_start

    def at(self, t: float) -> dict[str, float]:
        normal_s = max(0.0, (min(t, self.spike_start) if self.spike_start else t) - self.origin)
        spike_s = max(0.0, t - self.spike_start) if self.spike_start else 0.0
        values: dict[str, float] = {}
        for seconds, in_spike in ((normal_s, False), (spike_s, True)):
            errors, latency = self.traffic.shares(in_spike)
            total = self.traffic.requests_per_s * seconds
            by_status = {
                "200": total * (1 - CLIENT_ERROR_SHARE - errors),
                "404": total * CLIENT_ERROR_SHARE,
                "500": total * errors * 0.7,
                "503": total * errors * 0.3,
            }
            for status, count in by_status.items():
                key = f'http_requests_total{{{_labels()},status="{status}"}}'
                values[key] = values.get(key, 0.0) + count
            for bound, share in zip((*BUCKETS, math.inf), (*latency, 1.0), strict=True):
                le = "+Inf" if bound == math.inf else f"{bound:g}"
                key = f'http_request_duration_seconds_bucket{{{_labels()},le="{le}"}}'
                values[key] = values.get(key, 0.0) + total * share
            count_key = f"http_request_duration_seconds_count{{{_labels()}}}"
            sum_key = f"http_request_duration_seconds_sum{{{_labels()}}}"
            values[count_key] = values.get(count_key, 0.0) + total
            values[sum_key] = values.get(sum_key, 0.0) + total * _mean_latency(latency)
        return {k: round(v, 3) for k, v in values.items()}


def _labels() -> str:
    return f'job="{JOB}",instance="{INSTANCE}"'


def _mean_latency(latency: tuple[float, ...]) -> float:
    """Mean request time of a bucket profile, each bucket's share counted at its midpoint."""
    lower, previous, mean = 0.0, 0.0, 0.0
    for bound, share in zip(BUCKETS, latency, strict=True):
        mean += (share - previous) * (lower + bound) / 2
        lower, previous = bound, share
    return mean


def openmetrics_history(counters: _Counters, start: float, end: float, step_s: int) -> str:
    """The counters every `step_s` from `start` to `end`, as OpenMetrics text (families grouped, `# EOF` last)."""
    stamps = [start + i * step_s for i in range(int((end - start) // step_s) + 1)]
    samples = [counters.at(t) for t in stamps]
    lines = [
        "# HELP http_requests Requests served by the IMS API.",
        "# TYPE http_requests counter",
    ]
    families = {"http_requests_total": [], "http_request_duration_seconds": []}
    for key in samples[0]:
        family = "http_requests_total" if key.startswith("http_requests_total") else "http_request_duration_seconds"
        families[family].append(key)
    for key in families["http_requests_total"]:
        lines += [f"{key} {s[key]} {t:.0f}" for t, s in zip(stamps, samples, strict=True)]
    lines += [
        "# HELP http_request_duration_seconds Time the IMS API took to answer.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for key in families["http_request_duration_seconds"]:
        lines += [f"{key} {s[key]} {t:.0f}" for t, s in zip(stamps, samples, strict=True)]
    return "\n".join(lines) + "\n# EOF\n"


class _Exporter(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        values = self.server.counters.at(time.time())  # type: ignore[attr-defined]
        text = "".join(f"{key} {value}\n" for key, value in values.items()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


class PrometheusServer:
    def __init__(self, traffic: Traffic | None = None):
        self.traffic = traffic or Traffic()
        self.port = 0
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.exporter: ThreadingHTTPServer | None = None
        self.history_end = 0.0  # the last backfilled sample's time (scrapes continue from there)
        self.spike_start: float | None = None
        self._log = None

    def start(self, timeout_s: float = 30) -> PrometheusServer:
        binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if binary is None or promtool is None:
            raise RuntimeError("prometheus not found: run `sudo apt-get install -y prometheus`")
        self.dir = Path(tempfile.mkdtemp(prefix="imsnb-prometheus-"))
        now = time.time()
        step = self.traffic.step_s
        self.history_end = now - now % step
        origin = self.history_end - self.traffic.history.total_seconds()
        self.spike_start = self.history_end - self.traffic.spike.total_seconds() if self.traffic.spike else None
        counters = _Counters(self.traffic, origin, self.spike_start)

        history = self.dir / "history.om"
        history.write_text(openmetrics_history(counters, origin, self.history_end, step))
        data = self.dir / "data"
        made = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(history), str(data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if made.returncode != 0:
            raise RuntimeError(f"promtool could not backfill the history: {made.stderr.strip()[-500:]}")
        history.unlink()

        self.exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
        self.exporter.counters = counters  # type: ignore[attr-defined]
        self.exporter.daemon_threads = True
        threading.Thread(target=self.exporter.serve_forever, name="imsnb-sandbox-exporter", daemon=True).start()
        (self.dir / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    honor_labels: true\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{self.exporter.server_address[1]}']\n"
        )
        self.port = free_port()
        self._log = open(self.dir / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=self.dir,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "prometheus.log").read_text()[-800:]
                    raise RuntimeError(f"prometheus did not start on port {self.port}: {log}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"PROMETHEUS_URL": self.url}

    def stop(self) -> None:
        stop_process(self.process, timeout_s=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.exporter is not None:
            self.exporter.shutdown()
            self.exporter.server_close()
            self.exporter = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
