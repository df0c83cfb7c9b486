"""The runbook's "API Timeout Issues" fixes, each tied to what the other checks found."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import threshold

__all__ = [
    "timeout_recommendations",
]


Advice = tuple[str, str, str]  # (area, what was found, what to do)


def timeout_recommendations(
    statements: pd.DataFrame | None, times: pd.DataFrame | None, reach: pd.DataFrame | None
) -> pd.DataFrame:
    """The runbook's "API Timeout Issues" fixes, each tied to what was found (not a generic list)."""
    slow_ms = threshold("postgres.slow_queries").warning
    slow = statements[statements["mean_ms"] >= slow_ms] if statements is not None and not statements.empty else None
    advice = [
        *_network_advice(reach),
        *_statement_advice(slow),
        *_request_advice(times, database_is_slow=slow is not None and not slow.empty),
    ]
    if not advice:
        advice.append(
            (
                "none",
                "no slow statement, slow request or unreachable target found",
                "the timeout is likely upstream (load balancer, client): check their timeouts and logs",
            )
        )
    return pd.DataFrame(advice, columns=["area", "found", "recommendation"])


def _network_advice(reach: pd.DataFrame | None) -> list[Advice]:
    if reach is None:
        return []
    return [
        (
            "network",
            f"{row.target} unreachable: {row.error}",
            "check the service is up, then security groups, DNS and routes from the API host",
        )
        for row in reach[~reach["reachable"]].itertuples()
    ]


def _statement_advice(slow: pd.DataFrame | None) -> list[Advice]:
    """Per slow statement: an index when it reads from disk, pagination when it returns many rows, else EXPLAIN."""
    advice = []
    for row in slow.itertuples() if slow is not None else ():
        query = " ".join(str(row.query).split())[:80]
        if row.hit_ratio is not None and row.hit_ratio == row.hit_ratio and row.hit_ratio < 0.9:
            advice.append(
                (
                    "index",
                    f"{query} reads {1 - row.hit_ratio:.0%} of its blocks from disk",
                    "EXPLAIN (ANALYZE, BUFFERS) it and add an index on the filtered columns",
                )
            )
        elif row.calls and row.rows / row.calls > 1000:
            advice.append(
                (
                    "pagination",
                    f"{query} returns {row.rows / row.calls:,.0f} rows a call",
                    "paginate (LIMIT/keyset) instead of returning everything",
                )
            )
        else:
            advice.append(
                (
                    "query",
                    f"{query} averages {row.mean_ms:,.0f} ms over {row.calls:,} calls",
                    "EXPLAIN it; add an index or cache its result (query caching)",
                )
            )
    return advice


def _request_advice(times: pd.DataFrame | None, *, database_is_slow: bool) -> list[Advice]:
    """Failed requests (a stop-gap timeout) or a slow endpoint (the database first when it is slow too)."""
    if times is None or times.empty:
        return []
    p95_ms = threshold("api.p95_latency").warning
    answered = times[times["error"].isna()]
    if len(answered) < len(times):
        return [
            (
                "timeout",
                f"{len(times) - len(answered)} of {len(times)} requests failed: {times['error'].dropna().iloc[0]}",
                "raise the client timeout only as a stop-gap (runbook: TIMEOUT = 60) while the cause above is fixed",
            )
        ]
    if answered.empty or answered["elapsed_ms"].quantile(0.95) < p95_ms:
        return []
    p95 = answered["elapsed_ms"].quantile(0.95)
    return [
        (
            "endpoint",
            f"{answered['url'].iloc[0]} p95 {p95:,.0f} ms (runbook: < {p95_ms:g} ms)",
            "fix the slow statements above first"
            if database_is_slow
            else "the database looks fast: profile the endpoint (external calls, N+1 queries, locks)",
        )
    ]
