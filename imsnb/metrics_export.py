"""The daily baseline's export of key metrics: the runbook's

    curl http://prometheus:9090/api/v1/query?query=up | jq . > /backups/metrics-$(date +%Y%m%d).json

as `export_key_series`: `up` as the runbook asks it (an instant query, at the window's end) and the API's request
rate, 5xx error rate and p95 over the window (the day, as range queries), written
into the run folder as metrics-YYYYMMDD.json, so it is archived (and uploaded with `--archive`) with the run. The
runner gives the kernel a private folder for such files (`imsnb.started_with.run_files`) and adds them to the run
folder, scrubbed like the notebook; a notebook not run by `imsnb run` shows the export but writes no file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from imsnb import prometheus, started_with
from imsnb.files import write_atomic
from imsnb.findings import Finding, Severity
from imsnb.period import Period
from imsnb.window import Window

CHECK = "prometheus.export"
UP = "up"


def key_queries() -> dict[str, str]:
    """The series exported, as PromQL (with the configured IMSNB_PROM_* names)."""
    return {
        "up": UP,
        "request_rate": prometheus.promql(prometheus.REQUEST_RATE),
        "error_rate": prometheus.promql(prometheus.ERROR_RATE),
        "p95_latency_s": prometheus.promql(prometheus.P95_LATENCY),
    }


@dataclass
class Export:
    name: str  # metrics-YYYYMMDD.json
    document: dict
    path: Path | None  # where it was written (None: not run by `imsnb run`)
    points: int
    series: int
    empty: list[str] = field(default_factory=list)  # the key series with no data

    def table(self) -> pd.DataFrame:
        """One row per exported series: its name, labels and points."""
        rows = [
            {
                "series": name,
                "labels": ", ".join(f"{k}={v}" for k, v in s["labels"].items()),
                "points": len(s["values"]),
            }
            for name, entry in self.document["series"].items()
            for s in entry["result"]
        ]
        return pd.DataFrame(rows, columns=["series", "labels", "points"])


def export_name(window: Window) -> str:
    """metrics-YYYYMMDD.json, dated by the window's end (UTC), as the runbook's `date +%Y%m%d`."""
    return f"metrics-{window.end.astimezone(UTC):%Y%m%d}.json"


def key_series(window: Window, *, prom: prometheus.Prometheus | None = None) -> dict:
    """The export's content: each key series over `window` as Prometheus returns a range query (labels and
    [unix time, value] pairs), with the query and the step."""
    prom = prometheus.Prometheus.or_default(prom)
    step = prometheus.step_for(window)
    series = {}
    for name, query in key_queries().items():
        timeout = f"{prom.timeout_s:g}s"
        if name == "up":  # the runbook's own `query?query=up`: which targets answer now
            data = prom.get("query", {"query": query, "time": f"{window.end.timestamp():.3f}", "timeout": timeout})
            points = [[r["value"]] if r.get("value") else [] for r in (data or {}).get("result", [])]
        else:
            bounds = {"start": f"{window.start.timestamp():.3f}", "end": f"{window.end.timestamp():.3f}"}
            data = prom.get("query_range", {"query": query, **bounds, "step": str(step), "timeout": timeout})
            points = [r.get("values", []) for r in (data or {}).get("result", [])]
        result = [
            {"labels": r.get("metric", {}), "values": [[float(t), v] for t, v in values]}
            for r, values in zip((data or {}).get("result", []), points, strict=True)
        ]
        series[name] = {"query": query, "kind": "instant" if name == "up" else "range", "result": result}
    return {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "prometheus": prom.url,
        "step_s": step,
        "series": series,
    }


def export_key_series(window: Window, *, prom: prometheus.Prometheus | None = None) -> Export:
    """Read the key series and write them as metrics-YYYYMMDD.json into the run's files (when run by `imsnb run`).
    Prometheus unreachable or not configured is raised (the section's finding)."""
    document = key_series(window, prom=prom)
    name = export_name(window)
    folder = started_with.run_files()
    path = write_atomic(folder / name, json.dumps(document, indent=1) + "\n") if folder is not None else None
    entries = document["series"].values()
    return Export(
        name,
        document,
        path,
        points=sum(len(s["values"]) for e in entries for s in e["result"]),
        series=sum(len(e["result"]) for e in entries),
        empty=[n for n, e in document["series"].items() if not e["result"]],
    )


def export_finding(export: Export, window: Window) -> Finding:
    """OK when written into the run folder with every key series; INFO when a series had no data or when the
    notebook was not run by `imsnb run` (nothing written)."""
    period = Period(window.start, window.end, "window", f"Prometheus, a point every {export.document['step_s']} s")
    counted = f"{export.series} series, {export.points:,} points"
    missing = f"; no data for {', '.join(export.empty)} (check the IMSNB_PROM_* names)" if export.empty else ""
    if export.path is None:
        return Finding.of(
            CHECK,
            Severity.INFO,
            f"{counted} read but {export.name} not written: not run by `imsnb run` (no run folder){missing}",
            value=export.points,
            unit="points",
            period=period,
        )
    return Finding.of(
        CHECK,
        Severity.INFO if export.empty else Severity.OK,
        f"{counted} exported to {export.name} in the run folder{missing}",
        value=export.points,
        unit="points",
        period=period,
    )
