"""Redis counters over the period: INFO stats and commandstats, their deltas, hit rate, evictions and ops/s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.findings.confidence import judge_ratio
from imsnb.history import Snapshot
from imsnb.period import Period, duration
from imsnb.sampling.deltas import REDIS_INFO

__all__ = [
    "MIN_LOOKUPS",
    "REDIS_COUNTERS",
    "RedisDelta",
    "evictions_finding",
    "hit_rate_finding",
    "ops_finding",
    "redis_delta",
    "redis_snapshot",
    "redis_target",
]

MIN_LOOKUPS = 20  # Redis lookups in the sample needed to judge its hit rate


REDIS_COUNTERS = (
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
    "total_commands_processed",
    "total_connections_received",
)


def redis_target(cache: Any) -> str:
    return f"redis {cache.label}"


def redis_snapshot(cache: Any, taken_by: str = "imsnb") -> Snapshot:
    """INFO stats (hits, misses, evictions, commands) and commandstats; the epoch is the server's run_id."""
    info = cache.call("info", "everything")
    counters = {name: int(info.get(name, 0)) for name in REDIS_COUNTERS}
    counters["uptime_s"] = int(info.get("uptime_in_seconds", 0))
    commands = {
        name.removeprefix("cmdstat_"): {"calls": int(v.get("calls", 0)), "usec": int(v.get("usec", 0))}
        for name, v in info.items()
        if name.startswith("cmdstat_") and isinstance(v, dict)
    }
    epoch = str(info.get("run_id", ""))
    data = {**counters, "commands": commands}
    return Snapshot(redis_target(cache), REDIS_INFO, datetime.now(UTC), taken_by, epoch, data)


def counters_went_down(before: Snapshot, after: Snapshot) -> list[str]:
    """The INFO counters lower in `after` than in `before` of the same server run: a CONFIG RESETSTAT between them
    (Redis records no reset time; this is the only way to see one)."""
    if before.epoch != after.epoch or not isinstance(before.data, dict) or not isinstance(after.data, dict):
        return []
    return [n for n in REDIS_COUNTERS if int(after.data.get(n, 0)) < int(before.data.get(n, 0))]


@dataclass(kw_only=True)
class RedisDelta:
    hits: int
    misses: int
    evicted: int
    expired: int
    commands: int
    seconds: float
    lifetime_hits: int
    lifetime_misses: int
    lifetime_evicted: int
    uptime_s: int
    by_command: pd.DataFrame

    @property
    def hit_rate(self) -> float | None:
        return self.hits / (self.hits + self.misses) if self.hits + self.misses else None

    @property
    def lifetime_hit_rate(self) -> float | None:
        total = self.lifetime_hits + self.lifetime_misses
        return self.lifetime_hits / total if total else None

    @property
    def whole_lifetime(self) -> bool:
        """The period's numbers are the server's lifetime totals (its statistics started inside the window, or no
        sample): a since-restart figure beside them would repeat them."""
        return (self.hits, self.misses, self.evicted) == (
            self.lifetime_hits,
            self.lifetime_misses,
            self.lifetime_evicted,
        )

    @property
    def evictions_per_s(self) -> float:
        return self.evicted / self.seconds

    @property
    def ops_per_s(self) -> float:
        return self.commands / self.seconds


def redis_delta(before: Snapshot | None, after: Snapshot, seconds: float) -> RedisDelta:
    now, then = after.data, (before.data if before else {})
    restarted = before is not None and before.epoch != after.epoch

    def diff(name: str) -> int:
        value = int(now.get(name, 0)) - int(then.get(name, 0)) if then and not restarted else int(now.get(name, 0))
        return value if value >= 0 else int(now.get(name, 0))

    rows = []
    for name, counters in now.get("commands", {}).items():
        old = {} if restarted else then.get("commands", {}).get(name, {})
        calls = counters["calls"] - old.get("calls", 0)
        usec = counters["usec"] - old.get("usec", 0)
        if calls < 0:
            calls, usec = counters["calls"], counters["usec"]
        if calls > 0:
            rows.append({"command": name, "calls": calls, "per_s": calls / seconds, "usec_per_call": usec / calls})
    by_command = pd.DataFrame(rows, columns=["command", "calls", "per_s", "usec_per_call"])
    return RedisDelta(
        hits=diff("keyspace_hits"),
        misses=diff("keyspace_misses"),
        evicted=diff("evicted_keys"),
        expired=diff("expired_keys"),
        commands=diff("total_commands_processed"),
        seconds=seconds,
        lifetime_hits=int(now.get("keyspace_hits", 0)),
        lifetime_misses=int(now.get("keyspace_misses", 0)),
        lifetime_evicted=int(now.get("evicted_keys", 0)),
        uptime_s=int(now.get("uptime_s", 0)),
        by_command=by_command.sort_values("calls", ascending=False).reset_index(drop=True),
    )


def per_s(rate: float) -> str:
    """A rate as a reader says it: "0/s", "0.042/s" (never "0.0/s" for a few keys in minutes), "3.5/s", "1,200/s"."""
    if rate == 0:
        return "0/s"
    if rate < 0.1:
        return f"{rate:.2g}/s"
    return f"{rate:,.1f}/s" if rate < 100 else f"{rate:,.0f}/s"


def lifetime_text(sampled: RedisDelta) -> str:
    """What Redis's own lifetime counters cover, said without a figure that could mislead: "since Redis started
    2 h 5 min ago (or its last CONFIG RESETSTAT, which Redis does not record)"."""
    started = f" {duration(sampled.uptime_s)} ago" if sampled.uptime_s > 0 else ""
    return f"since Redis started{started} (or its last CONFIG RESETSTAT)"


def hit_rate_finding(
    sampled: RedisDelta,
    period: Period,
    min_lookups: int = MIN_LOOKUPS,
    baseline: dict[str, Any] | None = None,
    *,
    lifetime_at_most: Severity | str | None = None,
) -> Finding:
    """Redis hit rate in the period ("hit rate 70.0%, 700 hits and 300 misses"); the lifetime rate (with the
    lookups it covers) and the baseline's, when saved, are context after it. `lifetime_at_most`: the highest
    severity a since-restart rate may get (`imsnb.findings.on_lifetime`)."""
    context = []
    if not sampled.whole_lifetime and sampled.lifetime_hit_rate is not None:  # else the rate is the lifetime one
        total = sampled.lifetime_hits + sampled.lifetime_misses
        context.append(f"{sampled.lifetime_hit_rate:.1%} of {total:,} lookups {lifetime_text(sampled)}")
    if baseline and baseline.get("hit_rate") is not None:
        context.append(f"baseline {baseline['hit_rate']:.1%}")
    lookups = sampled.hits + sampled.misses
    if sampled.hit_rate is None or (not period.lifetime and lookups < min_lookups):
        return unjudged(
            "cache.hit_rate",
            Severity.OK,
            "; ".join([f"too few lookups to judge: {lookups}", *context]),
            value=sampled.hit_rate,
            period=period,
        )
    return judge_ratio(  # escalated on the upper bound of its 95% interval (imsnb/findings/confidence.py)
        "cache.hit_rate",
        sampled.hits,
        lookups,
        f"hit rate {sampled.hit_rate:.1%}, {sampled.hits:,} hits and {sampled.misses:,} misses",
        nouns=("lookups", "misses"),
        context="; ".join(context),
        seconds=period.seconds,
        period=period,
        lifetime_at_most=lifetime_at_most,
    )


def evictions_finding(
    sampled: RedisDelta, period: Period, *, lifetime_at_most: Severity | str | None = None
) -> Finding:
    """Keys evicted in the period (runbook: evictions = 0); lifetime evictions are context, not the verdict.
    `lifetime_at_most`: the highest severity a since-restart count may get (`on_lifetime`)."""
    lifetime = "" if sampled.whole_lifetime else f"; {sampled.lifetime_evicted:,} {lifetime_text(sampled)}"
    return judge(
        "cache.evictions",
        sampled.evicted,
        f"{sampled.evicted:,} keys evicted, {per_s(sampled.evictions_per_s)}{lifetime}; runbook: evictions = 0",
        period=period,
        lifetime_at_most=lifetime_at_most,
    )


def ops_finding(sampled: RedisDelta, period: Period, baseline: dict[str, Any] | None = None) -> Finding:
    """Commands per second in the period, the busiest three beside it: context for the other findings, not a
    verdict (always OK)."""
    top = ", ".join(f"{r.command} {r.per_s:.1f}/s" for r in sampled.by_command.head(3).itertuples())
    if baseline and baseline.get("ops_per_s") is not None:
        top += f"; baseline {baseline['ops_per_s']:.1f}/s"
    return Finding.ok(
        "cache.ops_per_s",
        f"{sampled.ops_per_s:.1f} commands/s ({top or 'none'})",
        value=round(sampled.ops_per_s, 1),
        unit="ops/s",
        evidence=sampled.by_command,
        period=period,
    )
