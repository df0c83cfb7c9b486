"""Charts as matplotlib Figures (no pyplot state): thresholds drawn as lines, top-N as bars.

Show one in a notebook with `imsnb.report.show(fig)`; it is embedded as PNG in the executed notebook and HTML.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from imsnb.findings import threshold

SEVERITY_COLOURS = {"ok": "#4c9f70", "warning": "#e0a030", "error": "#d0453a"}


def connections_chart(by_state: pd.DataFrame, max_conn: int) -> Figure:
    """Client connections by state, stacked, against the runbook's 80%-of-max line and max_connections."""
    warn_ratio = threshold("postgres.connections_used").warning
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.add_subplot()
    left = 0
    palette = ["#4878a8", "#9ab8d8", "#e0a030", "#d0453a", "#8c6bb1", "#7f7f7f"]
    for colour, row in zip(palette * 3, by_state.itertuples(), strict=False):
        ax.barh(["connections"], [row.connections], left=left, color=colour, label=f"{row.state} ({row.connections})")
        left += row.connections
    ax.axvline(
        max_conn * warn_ratio,
        color=SEVERITY_COLOURS["warning"],
        linestyle="--",
        label=f"{warn_ratio:.0%} of max ({max_conn * warn_ratio:.0f})",
    )
    ax.axvline(max_conn, color=SEVERITY_COLOURS["error"], label=f"max_connections ({max_conn})")
    ax.set_xlim(0, max(max_conn, left) * 1.05)
    ax.set_xlabel("client connections")
    ax.set_title(f"Connections: {left} of {max_conn} ({left / max_conn:.0%})" if max_conn else "Connections")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, fontsize=8, frameon=False)
    return fig


def top_statements_chart(statements: pd.DataFrame, n: int = 10) -> Figure:
    """Statements by total time; bars over the slow-query mean threshold are coloured as warnings."""
    slow_ms = threshold("postgres.slow_queries").warning
    top = statements.head(n).iloc[::-1]
    fig = Figure(figsize=(9, 0.45 * max(len(top), 2) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    if top.empty:
        ax.text(0.5, 0.5, "no statements recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    labels = [_label(q) for q in top["query"]]
    colours = [SEVERITY_COLOURS["warning" if m >= slow_ms else "ok"] for m in top["mean_ms"]]
    ax.barh(range(len(top)), top["total_ms"] / 1000, color=colours)
    ax.set_yticks(range(len(top)), labels, fontsize=7)
    for i, (total, mean) in enumerate(zip(top["total_ms"], top["mean_ms"], strict=True)):
        ax.text(total / 1000, i, f"  mean {mean:.0f} ms", va="center", fontsize=7)
    ax.set_xlabel("total execution time (s)")
    ax.set_title(f"Top statements by total time (amber: mean ≥ {slow_ms:g} ms)")
    ax.margins(x=0.25)
    return fig


def _label(query: str, width: int = 60) -> str:
    """Text read from a target, one line, cut to `width`, shown as written: Matplotlib renders the text between two
    `$` as math (`WHERE id = $1 AND n > $2` lost its spaces and parameters), so every `$` is escaped."""
    one_line = " ".join(str(query).split())
    cut = one_line if len(one_line) <= width else one_line[: width - 1] + "…"
    return cut.replace("$", r"\$")


def cache_memory_chart(used_bytes: int, maxmemory_bytes: int, hits: int, misses: int) -> Figure:
    """Two bars: memory used against maxmemory (90% line) and the hit rate (80% line)."""
    fig = Figure(figsize=(9, 2.4), layout="constrained")
    memory_ax, hits_ax = fig.subplots(1, 2)
    mib = 2**20
    limit = maxmemory_bytes or used_bytes
    memory_ax.barh(["memory"], [used_bytes / mib], color="#4878a8")
    memory_ax.axvline(
        limit * threshold("cache.memory_used").warning / mib,
        color=SEVERITY_COLOURS["warning"],
        linestyle="--",
        label="90% of maxmemory",
    )
    if maxmemory_bytes:
        memory_ax.axvline(limit / mib, color=SEVERITY_COLOURS["error"], label="maxmemory")
    memory_ax.set_xlim(0, max(limit, used_bytes) / mib * 1.05)
    memory_ax.set_xlabel("MiB")
    memory_ax.set_title(
        f"Memory: {used_bytes / mib:.1f} of {maxmemory_bytes / mib:.1f} MiB"
        if maxmemory_bytes
        else f"Memory: {used_bytes / mib:.1f} MiB (no maxmemory)"
    )
    memory_ax.legend(fontsize=7, loc="lower right")
    total = hits + misses
    rate = hits / total if total else 0.0
    hits_ax.barh(["lookups"], [rate], color=SEVERITY_COLOURS["ok"], label=f"hits {hits:,}")
    hits_ax.barh(["lookups"], [1 - rate if total else 0], left=[rate], color="#c9c9c9", label=f"misses {misses:,}")
    hits_ax.axvline(
        threshold("cache.hit_rate").warning, color=SEVERITY_COLOURS["warning"], linestyle="--", label="80% hit rate"
    )
    hits_ax.set_xlim(0, 1)
    hits_ax.set_title(f"Hit rate: {rate:.1%}" if total else "Hit rate: no lookups yet")
    hits_ax.legend(fontsize=7, loc="lower right")
    return fig


def response_times_chart(times: pd.DataFrame) -> Figure:
    """Each sampled request's time against the runbook's 500 ms p95 line; failed requests in red at the top."""
    limit = threshold("api.p95_latency").warning
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.add_subplot()
    ok = times["error"].isna()
    ax.bar(times.index[ok], times.loc[ok, "elapsed_ms"], color=SEVERITY_COLOURS["ok"], label="answered")
    if (~ok).any():
        ax.bar(times.index[~ok], times.loc[~ok, "elapsed_ms"], color=SEVERITY_COLOURS["error"], label="failed")
    ax.axhline(limit, color=SEVERITY_COLOURS["warning"], linestyle="--", label=f"{limit:g} ms (runbook p95)")
    ax.set_xlabel("request")
    ax.set_ylabel("ms")
    ax.set_title(f"Response times: {_label(times['url'].iloc[0], 90)}" if len(times) else "Response times")
    ax.legend(fontsize=7)
    return fig


def timeseries_chart(
    frame: pd.DataFrame,
    metric: str,
    *,
    threshold_value: float | None = None,
    check: str | None = None,
    title: str | None = None,
    unit: str = "",
    fit: bool = False,
) -> Figure:
    """One CloudWatch metric over the window (a tidy frame from imsnb.aws.cloudwatch), with its threshold line
    and, with `fit`, the least-squares trend (the memory-leak projection).

    `check` draws that check's warning level from the catalogue (with its IMSNB_THRESHOLD_* override, so the line
    moves with the finding); `threshold_value` is for a line no check judges."""
    if check is not None:
        threshold_value = threshold(check).warning
    rows = frame[frame["metric"] == metric]
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(_label(title or metric, 90))
    if rows.empty:
        ax.text(0.5, 0.5, f"no {metric} datapoints in the window", ha="center", va="center", transform=ax.transAxes)
        return fig
    times = pd.to_datetime(rows["timestamp"])
    ax.plot(times, rows["value"], color="#4878a8", linewidth=1.2, label=metric)
    if threshold_value is not None:
        ax.axhline(
            threshold_value,
            color=SEVERITY_COLOURS["warning"],
            linestyle="--",
            label=f"threshold {threshold_value:g}{unit}",
        )
    if fit and len(rows) >= 3:
        hours = (times - times.iloc[0]).dt.total_seconds().to_numpy() / 3600
        slope, intercept = np.polyfit(hours, rows["value"].to_numpy(dtype=float), 1)
        ax.plot(
            times,
            slope * hours + intercept,
            color=SEVERITY_COLOURS["error"],
            linestyle=":",
            label=f"trend {slope:+.2f}{unit}/h",
        )
    ax.set_ylabel(unit)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return fig


def index_advice_chart(advice: pd.DataFrame) -> Figure:
    """The planner's cost of each statement an advised index helps, before (grey) and with the index (green; none
    when not verified), on a log scale: a seq scan's thousands against an index scan's units."""
    rows = [(row.index, entry) for row in advice.itertuples() for entry in row.detail] if not advice.empty else []
    fig = Figure(figsize=(9, 0.55 * max(len(rows), 2) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    if not rows:
        ax.text(0.5, 0.5, "no index advised", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    rows = rows[::-1]
    positions = range(len(rows))
    before = [entry["cost_before"] for _, entry in rows]
    after = [entry["cost_after"] for _, entry in rows]
    ax.barh([p + 0.2 for p in positions], before, height=0.4, color="#9a9a9a", label="planner cost now")
    verified = [(p, a) for p, a in zip(positions, after, strict=True) if a == a]  # NaN: not verified
    if verified:
        ax.barh(
            [p - 0.2 for p, _ in verified],
            [max(a, 0.01) for _, a in verified],
            height=0.4,
            color=SEVERITY_COLOURS["ok"],
            label="with the advised index (HypoPG)",
        )
    labels = [f"{_label(entry['query'], 50)}\n→ {index}" for index, entry in rows]
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("planner cost (log scale)")
    ax.set_title("Index advice: planner cost per statement, before and with the index")
    ax.legend(fontsize=7, loc="lower right")
    return fig


CHANGE_COLOURS = {"ecs": "#4878a8", "rds": "#8c6bb1", "elasticache": "#2a9d8f", "imsnb": "#7f7f7f"}
MAX_CHANGE_LABELS = 12


def change_timeline_chart(curve: pd.DataFrame, changes: pd.DataFrame, correlation: object | None = None) -> Figure:
    """Errors per minute (bars; the error rate as a line on the right axis against the runbook's 0.1%) with each
    change in the window marked as a vertical line coloured by its source; the change the errors followed (from
    `imsnb.aws.changes.correlate`) in red, and the moment they rose shaded from there."""
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.add_subplot()
    named = getattr(correlation, "change", None)
    onset = getattr(correlation, "onset", None)
    ax.set_title(
        f"Errors per minute and what changed (red: the errors followed {_label(named['what'], 55)})"
        if named
        else "Errors per minute and what changed",
        fontsize=10,
    )
    if curve.empty and changes.empty:
        ax.text(0.5, 0.5, "no errors and no changes in the window", ha="center", va="center", transform=ax.transAxes)
        return fig
    if not curve.empty:
        minutes = pd.to_datetime(curve["minute"], utc=True)
        ax.bar(minutes, curve["errors"], width=1 / 1440 * 0.9, align="edge", color="#d98c8c", label="errors / min")
        rate_ax = ax.twinx()
        rate_ax.step(
            minutes, curve["rate"] * 100, where="post", color=SEVERITY_COLOURS["error"], linewidth=1, label="error rate"
        )
        level = threshold("api.error_rate").warning * 100
        rate_ax.axhline(level, color=SEVERITY_COLOURS["warning"], linestyle="--", label=f"{level:g}% (runbook)")
        rate_ax.set_ylabel("% of log lines")
        rate_ax.legend(fontsize=7, loc="upper right")
    ax.set_ylabel("errors per minute")
    shown = changes.tail(MAX_CHANGE_LABELS)
    top = ax.get_ylim()[1]
    for row in shown.itertuples():
        is_named = named is not None and row.at == named["at"] and row.what == named["what"]
        colour = SEVERITY_COLOURS["error"] if is_named else CHANGE_COLOURS.get(row.source, "#7f7f7f")
        ax.axvline(row.at, color=colour, linewidth=2.2 if is_named else 1, linestyle="-" if row.candidate else ":")
        ax.text(row.at, top, " " + _label(row.what, 40), rotation=90, va="top", ha="right", fontsize=6, color=colour)
    if onset is not None and named is not None:
        ax.axvspan(named["at"], onset, color=SEVERITY_COLOURS["error"], alpha=0.12, label="change → errors rose")
    if len(changes) > len(shown):
        ax.text(
            0.01,
            0.98,
            f"{len(changes) - len(shown)} earlier change(s) not drawn",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
        )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0.9))
    fig.autofmt_xdate()
    return fig
