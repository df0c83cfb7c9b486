"""The table snapshot reads what pg_stat_user_tables says, at a cost that follows the tables kept, not the schema's
size (issue 22 §3; the cost is measured by bench/table_snapshot.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from imsnb import postgres, sampling
from imsnb.sampling.postgres import TABLE_COLUMNS, TABLES_SNAPSHOT

VIEW = """
SELECT
    schemaname AS schema,
    relname AS table,
    coalesce(seq_scan, 0)::float8 AS seq_scan,
    coalesce(seq_tup_read, 0)::float8 AS seq_tup_read,
    coalesce(idx_scan, 0)::float8 AS idx_scan,
    coalesce(idx_tup_fetch, 0)::float8 AS idx_tup_fetch,
    n_live_tup::float8 AS live_rows
FROM pg_stat_user_tables
"""


@pytest.fixture(scope="module")
def db(degraded):
    env = degraded.env()
    settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"], "dbname": env["DB_NAME"]}
    with postgres.Database("tests", settings={**settings, "password": env["DB_PASSWORD"]}) as session:
        yield session


def test_the_snapshot_keeps_the_views_values_for_the_tables_it_keeps(db):
    with db.connection().transaction():  # one statistics snapshot for every read
        db.execute("SET LOCAL stats_fetch_consistency = snapshot")
        view = db.frame(VIEW)
        every = db.frame(TABLES_SNAPSHOT, {"limit": 1000})
        top = db.frame(TABLES_SNAPSHOT, {"limit": 1})
    assert len(view) >= 2 and list(every.columns) == TABLE_COLUMNS
    keyed = view.set_index(["schema", "table"]).sort_index()
    pd.testing.assert_frame_equal(every.set_index(["schema", "table"]).sort_index(), keyed, check_dtype=False)
    assert every["seq_tup_read"].is_monotonic_decreasing
    assert len(top) == 1 and top["seq_tup_read"].iloc[0] == view["seq_tup_read"].max()
    assert (every["idx_scan"] > 0).any(), "the index sums are there"


def test_the_stored_snapshot_still_has_every_column(db):
    snapshot = sampling.postgres_snapshot(db, sampling.PG_TABLES, "tests")
    assert snapshot.data and all(len(row) == len(TABLE_COLUMNS) for row in snapshot.data)
