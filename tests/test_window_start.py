"""The window rule on a history store alone (no server): what a stored snapshot can stand for, and what a store that
failed once costs (imsnb/sampling/start.py, Sample's first look for the window's start)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imsnb import sampling
from imsnb.history import History, Snapshot
from imsnb.sampling import sample as sample_module
from imsnb.sampling.deltas import REDIS_INFO
from imsnb.sampling.start import window_start
from imsnb.window import Window

EPOCH = "2026-01-01T00:00:00+00:00|2026-01-01T00:00:00+00:00"


class _FailsOnce(History):
    """A store whose listing fails once (SQLite busy past its timeout, a network blip), then works."""

    failures = 0
    reads = 0

    def stored(self, *args, **kwargs):
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise OSError("store briefly unreachable")
        return super().stored(*args, **kwargs)


def test_a_store_that_failed_at_the_first_look_is_read_again_for_the_delta(tmp_path, monkeypatch):
    """The first look for the window's start (to skip the sample's wait) fails; the store is back for the delta:
    the stored snapshot stands for the start, and no store problem is reported."""
    history = _FailsOnce(tmp_path / "h.sqlite")
    now = datetime.now(UTC)
    stored = Snapshot("t", sampling.PG_DATABASE, now - timedelta(minutes=16), "imsnb record", EPOCH, [["app", 1, 1, 1]])
    history.add(stored, now=stored.taken_at)

    def snapshot(self, source):
        return Snapshot("t", source, datetime.now(UTC), "tests", EPOCH, [["app", 2, 2, 2]])

    monkeypatch.setattr(sample_module.Sample, "_snapshot", snapshot)
    monkeypatch.setattr(sample_module.Sample, "_store", lambda self, snapshots: None)
    sample = sample_module.Sample(0.2, db=object(), window=Window(now - timedelta(minutes=15), now), history=history)
    history.failures, history.reads = 1, 0
    assert sample.remaining_s(sampling.PG_DATABASE) > 0, "the first look failed: the sample runs"
    assert sample.remaining_s(sampling.PG_DATABASE) > 0 and history.reads == 1, "not asked again before the delta"
    delta = sample.delta(sampling.PG_DATABASE)
    assert history.reads == 2, "the delta reads the store once more"
    assert delta.period.basis == "history" and delta.before.taken_at == stored.taken_at, delta.period
    assert sample.store_finding() is None


def _redis(at: datetime, hits: int) -> Snapshot:
    return Snapshot("redis x", REDIS_INFO, at, "imsnb record", "run-1", {"keyspace_hits": hits, "uptime_s": 10**7})


def test_a_redis_window_four_days_back_starts_from_the_snapshot_kept_before_it(tmp_path):
    """A day of Redis snapshots a minute apart (more than the rule reads with their counters) and hourly ones four
    days back: a 2-hour window there starts from the hourly one before it, and never from one after its end."""
    history = History(tmp_path / "h.sqlite")
    now = datetime.now(UTC).replace(microsecond=0)
    day = (now - timedelta(days=4)).replace(minute=30, second=0)
    hourly = [day.replace(minute=59) + timedelta(hours=k) for k in (-2, -1, 0, 1, 2)]
    recent = [now - timedelta(minutes=m) for m in range(1500, 0, -1)]
    history.add(*(_redis(at, i) for i, at in enumerate(hourly + recent)), now=now)
    latest = now - timedelta(seconds=1)
    chosen, _ = window_start(
        Window(day, day + timedelta(hours=2)), _redis(now, 10**6), history, older_than=latest, live=False
    )
    assert chosen is not None and chosen.start == hourly[1], chosen
    short = Window(day + timedelta(minutes=5), day + timedelta(minutes=20))  # nothing kept at or in it
    chosen, _ = window_start(short, _redis(now, 10**6), history, older_than=latest, live=False)
    assert chosen is None, "a snapshot taken after the window's end covers none of it"
