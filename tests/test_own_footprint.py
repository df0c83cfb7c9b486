"""imsnb is not the patient: its own statements are tagged, and left out of what it judges (issue 22 §1)."""

from __future__ import annotations

import pandas as pd
import pytest

from imsnb import postgres, sampling
from imsnb.history import History
from imsnb.postgres.session import TAG, tagged
from imsnb.sampling.own import without_own_blocks

IMSNB_SLOW = "SELECT 1 AS waited FROM pg_sleep(0.12)"  # imsnb's own slow statement (a different tree from the app's)
APP_SLOW = "SELECT pg_sleep(0.11)"


def _db(sandbox) -> postgres.Database:
    env = sandbox.env()
    settings = {k.lower()[3:]: env[k] for k in ("DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "DB_PASSWORD")}
    settings["dbname"] = settings.pop("name")
    return postgres.Database("tests", settings=settings)


def test_tagged_prefixes_text_and_composed_once():
    assert tagged("SELECT 1") == f"{TAG} SELECT 1"
    assert tagged(tagged("SELECT 1")) == f"{TAG} SELECT 1"
    composed = tagged(postgres.session.pgsql.SQL("SELECT {}").format(postgres.session.pgsql.Literal(1)))
    assert composed.as_string(None).startswith(f"{TAG} SELECT")


@pytest.fixture(scope="module")
def footprint(degraded, tmp_path_factory):
    """A sample over which imsnb itself runs a slow statement and the application runs one too."""
    history = History(tmp_path_factory.mktemp("own") / "h.sqlite")
    with _db(degraded) as db:
        sample = sampling.Sample(0.5, db=db, taken_by="tests", history=history)
        db.frame(IMSNB_SLOW)
        with degraded.postgres.connect() as app:
            app.execute(APP_SLOW)
        slow = sample.statements(limit=50, min_mean_ms=100)
        top = sample.statements(limit=1000)
        texts = db.frame("SELECT query FROM pg_stat_statements WHERE query LIKE %(q)s", {"q": "%pg_sleep%"})
        yield {
            "slow": slow,
            "top": top,
            "texts": list(texts["query"]),
            "databases": sample.databases(),
            "line": sample.own_load_line(),
            "load": sample.own_load(),
        }


def test_pg_stat_statements_keeps_the_tag_of_what_imsnb_sent(footprint):
    tagged_texts = [t for t in footprint["texts"] if t.startswith(TAG) and "FROM pg_sleep" in t]
    assert tagged_texts, footprint["texts"]


def test_own_statements_are_not_slow_or_top(footprint):
    slow, top = footprint["slow"], footprint["top"]
    assert any("pg_sleep" in q and "FROM pg_sleep" not in q for q in slow["query"]), slow["query"].tolist()
    assert not [q for q in top["query"] if q and (q.startswith(TAG) or "FROM pg_sleep" in q)], top["query"].tolist()
    assert not [q for q in top["query"] if q and "pg_stat_statements" in q], "imsnb's snapshot read is not the app's"


def test_report_line_says_how_much_was_imsnbs(footprint):
    load = footprint["load"]
    assert load["total_ms"].sum() >= 120, load  # at least its own pg_sleep
    assert load["total_ms"].sum() < load["all_total_ms"].sum()
    assert footprint["line"].startswith("imsnb's own statements in the ")
    assert "left out of slow" in footprint["line"]


def test_hit_ratio_leaves_imsnbs_blocks_out(footprint):
    databases = footprint["databases"]
    assert "own_blks" in databases
    assert databases["own_blks"].sum() > 0, databases


def test_without_own_blocks_recomputes_the_ratio():
    databases = pd.DataFrame({"database": ["ims", "other"], "blks_hit": [900, 50], "blks_read": [100, 0]})
    own = pd.DataFrame({"database": ["ims"], "blks_hit": [800.0], "blks_read": [0.0]})
    out = without_own_blocks(databases, own).set_index("database")
    assert out.loc["ims", "blks_hit"] == 100 and out.loc["ims", "own_blks"] == 800
    assert out.loc["ims", "hit_ratio"] == pytest.approx(0.5)
    assert out.loc["other", "hit_ratio"] == 1.0 and out.loc["other", "own_blks"] == 0
