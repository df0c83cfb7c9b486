"""A ratio judged with its uncertainty: the Wilson score interval, and the judge of hit and error rates built on it.

A hit rate of 77% over 40 lookups and one over 40,000 are not the same news. A rate escalates only when the bound of
its 95% interval nearest to "fine" crosses the catalogue's level: a hit rate (lower is worse) when its upper bound
is under the threshold, an error rate (higher is worse) when its lower bound is over it. Otherwise the finding is
INFO, "too little traffic to judge", with the counts it rests on. The levels stay in the catalogue.

    wilson_interval(2, 40)  -> (0.0138, 0.1650)   2 errors in 40 requests: 5% observed, 1.4%–16.5% likely
"""

from __future__ import annotations

import math
from typing import Any

from imsnb.findings.catalogue import Threshold, threshold
from imsnb.findings.finding import Finding, Severity
from imsnb.findings.judging import on_lifetime
from imsnb.period import Period

Z95 = 1.96  # the normal quantile of a two-sided 95% interval


def wilson_interval(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion k/n (k successes in n trials), clipped to [0, 1].

    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and does not collapse to a point at 0% or 100%: 0 errors in
    10 requests is 0%–27.8%, not "exactly 0%"."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs at least one trial (n={n!r})")
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k={k!r} must lie between 0 and n={n!r}")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def cautious_bound(limit: Threshold, k: float, n: float, z: float = Z95) -> float:
    """The bound of k/n's interval nearest to good for `limit`: the upper one where lower is worse (hit rates),
    the lower one where higher is worse (error rates)."""
    low, high = wilson_interval(k, n, z)
    return low if limit.above else high


def span_text(seconds: float | None) -> str:
    """'in 14 s', 'in 2 min', 'in 1.5 h' ('' when unknown)."""
    if seconds is None or seconds <= 0:
        return ""
    if seconds < 90:
        return f" in {seconds:.0f} s"
    if seconds < 5400:
        return f" in {seconds / 60:.0f} min"
    return f" in {seconds / 3600:.1f} h"


def judge_ratio(
    check: str,
    k: float,
    n: float,
    message: str,
    *,
    nouns: tuple[str, str],
    seconds: float | None = None,
    limit: Threshold | None = None,
    z: float = Z95,
    context: str = "",
    value: float | None = None,
    period: Period | None = None,
    lifetime_at_most: Severity | str | None = None,
    **extra: Any,
) -> Finding:
    """A finding for the rate k/n against the catalogue's levels for `check`, escalated by its cautious bound.

    `k`: what the rate counts (hits for a hit rate, errors for an error rate); `nouns`: what n and the bad events
    are called ("lookups", "misses"), for "too little traffic to judge: 40 lookups, 9 misses in 2 min". The message
    says the rate, then its 95% interval, then `context` (a lifetime rate, a baseline). `value`: the number shown
    (default the observed rate; an error rate shows its peak). `seconds`: the span the counts cover, for "in 2 min"
    (a sample's period; an error rate's rate window, not the whole window); `period`, `lifetime_at_most`: as for
    `judge`."""
    limit = limit or threshold(check)
    rate = k / n
    low, high = wilson_interval(k, n, z)
    observed = limit.severity(rate)
    severity = limit.severity(low if limit.above else high)
    bad = k if limit.above else n - k
    interval = f"95% interval {low:.1%}–{high:.1%}"
    if severity < observed and severity <= Severity.INFO:
        severity = Severity.INFO
        message = (
            f"too little traffic to judge: {n:,.0f} {nouns[0]}, {bad:,.0f} {nouns[1]}{span_text(seconds)} "
            f"({message}; {interval}, which reaches the {limit.warning:.1%} level)"
        )
    else:
        message = f"{message} ({interval})"
    if context:
        message = f"{message}; {context}"
    severity, message = on_lifetime(severity, message, period, lifetime_at_most)
    shown = round(rate, 5) if value is None else value
    return Finding.of(
        check, severity, message, value=shown, threshold=limit.warning, unit=limit.unit, period=period, **extra
    )
