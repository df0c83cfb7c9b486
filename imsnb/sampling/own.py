"""imsnb's own footprint in what it reads: its pg_stat_statements entries (left out of what is judged) and the
line that says how much of the period's load was its own."""

from __future__ import annotations

import pandas as pd

from imsnb import postgres
from imsnb.period import Period

__all__ = [
    "OwnKeys",
    "is_own",
    "own_load_text",
    "own_statements",
    "without_own_blocks",
]

# imsnb's own entries: the texts imsnb sent start with its tag (postgres.session.TAG). One read of the texts per run
# (the snapshots stay without text); the statements imsnb sends are the same few constants run after run.
OWN_STATEMENTS = """
SELECT DISTINCT
    s.queryid::text AS queryid,
    d.datname AS database,
    r.rolname AS user,
    {toplevel} AS toplevel
FROM pg_stat_statements AS s
LEFT JOIN pg_database AS d ON d.oid = s.dbid
LEFT JOIN pg_roles AS r ON r.oid = s.userid
WHERE s.queryid IS NOT NULL
    AND s.query LIKE '/* imsnb */%%'
"""

OwnKeys = frozenset  # of (queryid, database, user, toplevel): imsnb's own pg_stat_statements entries


def own_statements(db: postgres.Database) -> OwnKeys:
    """The pg_stat_statements entries imsnb itself created (their text starts with its tag), as keys of
    `statement_rows`: left out of what is judged, counted in `own_load`."""
    names = postgres.statement_time_columns(db)
    frame = db.frame(OWN_STATEMENTS.format(toplevel=names["toplevel"]), {})
    return frozenset((str(r.queryid), r.database, r.user, bool(r.toplevel)) for r in frame.itertuples(index=False))


def is_own(merged: pd.DataFrame, own: OwnKeys) -> pd.Series:
    """Which rows of a frame keyed by STATEMENT_KEY are imsnb's own entries."""
    keys = zip(merged["queryid"], merged["database"], merged["user"], merged["toplevel"], strict=True)
    return pd.Series([(str(q), d, u, bool(t)) in own for q, d, u, t in keys], index=merged.index, dtype=bool)


def own_load_text(load: pd.DataFrame, period: Period) -> str:
    """One line for the report (not a finding): how much of the period's statement time and buffer accesses was
    imsnb's own, left out of what was judged."""
    mine_ms, all_ms = float(load["total_ms"].sum()), float(load["all_total_ms"].sum())
    mine_blks = float((load["blks_hit"] + load["blks_read"]).sum())
    all_blks = float(load["all_blks"].sum())
    return (
        f"imsnb's own statements in the {period.label()}: {int(load['calls'].sum()):,} calls, "
        f"{mine_ms:,.1f} ms of {all_ms:,.1f} ms statement time ({share(mine_ms, all_ms)}), "
        f"{mine_blks:,.0f} of {all_blks:,.0f} buffer accesses ({share(mine_blks, all_blks)}); "
        "left out of slow, top, regressed, plans, index advice and the hit ratio"
    )


def share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole > 0 else "n/a"


def without_own_blocks(databases: pd.DataFrame, own: pd.DataFrame) -> pd.DataFrame:
    """`database_delta` less imsnb's own statements' buffer hits and reads (never below zero), the hit ratio
    recomputed; `own_blks` says how many accesses were left out."""
    mine = own.set_index("database")[["blks_hit", "blks_read"]] if not own.empty else None
    out = databases.copy()
    hit = out["database"].map(mine["blks_hit"]) if mine is not None else pd.Series(0.0, index=out.index)
    read = out["database"].map(mine["blks_read"]) if mine is not None else pd.Series(0.0, index=out.index)
    hit, read = hit.fillna(0.0).clip(upper=out["blks_hit"]), read.fillna(0.0).clip(upper=out["blks_read"])
    out["blks_hit"] = (out["blks_hit"] - hit).astype(int)
    out["blks_read"] = (out["blks_read"] - read).astype(int)
    accesses = out["blks_hit"] + out["blks_read"]
    out["hit_ratio"] = out["blks_hit"] / accesses.where(accesses > 0)
    out["own_blks"] = (hit + read).astype(int)
    return out
