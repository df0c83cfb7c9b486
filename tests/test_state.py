"""imsnb.state: one store chosen by URL (SQLite by default, a team's PostgreSQL), its schema and migrations, the
history's promises on both dialects, the refusal of the diagnosed database, an unreachable store as a WARNING, the
run catalogue across outputs folders and the notification state kept in the store. The store is a private
PostgreSQL started here (the sandbox's PostgresServer), never the session's diagnosed sandbox."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import present_began
from notify_servers import PagerDuty, Slack
from store_server import fake_run, new_store, rows, store_name

from imsnb import archive, notify
from imsnb.errors import BadParameter, StoreError
from imsnb.findings import Severity
from imsnb.history import History, Snapshot
from imsnb.sandbox.postgres import PostgresServer, free_port
from imsnb.state import open_store, parse_store_url
from imsnb.state.catalogue import record_run, worker_name
from imsnb.state.schema import LATEST, MIGRATIONS

pytestmark = pytest.mark.servers  # a PostgreSQL store

ROOT = Path(__file__).resolve().parent.parent
ROUTING_KEY = "StoreRoutingKeyPagerDuty01234567"
WEBHOOK_TOKEN = "WhK9s3cretT0kenForSlackStore77"


@pytest.fixture(scope="module")
def store_server():
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(store_server, monkeypatch):
    """A new, empty store database, named by IMSNB_STATE_URL."""
    url = new_store(store_server)
    monkeypatch.setenv("IMSNB_STATE_URL", url)
    return url


def imsnb(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imsnb.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---------------------------------------------------------------- the URL


def test_a_store_url_is_named_without_its_credentials_and_a_bad_one_is_one_line():
    url = parse_store_url("postgresql://bob:pw%40x@db.internal:6543/imsnb_state?sslmode=require")
    assert url.name == "postgresql://db.internal:6543/imsnb_state" and url.shared
    assert url.conninfo["password"] == "pw@x" and url.conninfo["sslmode"] == "require"
    # no password in the URL: password '' so that libpq never sends PGPASSWORD (the diagnosed target's) to the store
    assert parse_store_url("postgres://bob@db.internal/imsnb").conninfo["password"] == ""
    assert parse_store_url("sqlite:///var/lib/imsnb/state.sqlite").path == Path("/var/lib/imsnb/state.sqlite")
    for bad, said in [
        ("mysql://bob:Sekr3tPw@db/x", "scheme 'mysql'"),
        ("postgresql://bob:Sekr3tPw@db.internal", "names no database"),
        ("postgresql:///imsnb", "names no host"),
        ("sqlite://relative.sqlite", "three slashes"),
        ("db.internal/imsnb", "no scheme"),
    ]:
        with pytest.raises(BadParameter, match=said) as refused:
            parse_store_url(bad)
        assert "Sekr3tPw" not in str(refused.value) and "\n" not in str(refused.value)


def test_imsnb_state_url_wins_over_imsnb_history(tmp_path, monkeypatch):
    monkeypatch.delenv("IMSNB_STATE_URL", raising=False)
    monkeypatch.setenv("IMSNB_HISTORY", str(tmp_path / "h.sqlite"))
    assert History().path == tmp_path / "h.sqlite" and not History().store.shared
    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    history = History()
    history.add(Snapshot("db:5432/app", "statements", datetime.now(UTC), "tests", "e1", {"calls": 1}))
    assert history.path == tmp_path / "state.sqlite" and history.store.shared
    assert history.count() == 1 and not (tmp_path / "h.sqlite").exists()


def test_the_toml_state_url_is_read_and_a_password_in_it_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("IMSNB_STATE_URL", raising=False)
    config = tmp_path / "imsnb.toml"
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    config.write_text('[state]\nurl = "postgresql://imsnb@state.internal:5433/imsnb_state"\n')
    assert History().name == "postgresql://state.internal:5433/imsnb_state"
    config.write_text('[state]\nurl = "postgresql://imsnb:Hunter2Pw@state.internal/imsnb_state"\n')
    proc = imsnb("state", "status", env={"IMSNB_CONFIG": str(config)})
    assert proc.returncode == 2 and "holds a secret (a URL with a password)" in proc.stderr, proc.stderr
    assert "Hunter2Pw" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_diagnosed_database_is_refused_as_the_store_unless_allowed(store_server, store, tmp_path):
    database = store.rsplit("/", 1)[1]
    target = {"DB_HOST": "localhost", "DB_PORT": str(store_server.port), "DB_NAME": database}
    refused = imsnb("state", "init", env={"IMSNB_STATE_URL": store, **target})
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert (
        f"the store {store_name(store)} is the database being diagnosed" in line and "IMSNB_STATE_ALLOW_TARGET" in line
    )
    assert store_server.password not in line
    outputs = tmp_path / "outputs"
    run = imsnb("run", "db_performance", "--outputs", str(outputs), env={"IMSNB_STATE_URL": store, **target})
    assert run.returncode == 2 and "is the database being diagnosed" in run.stderr, run.stderr
    assert not outputs.exists() or not any(outputs.iterdir()), "refused before anything was written"
    allowed = imsnb("state", "init", env={"IMSNB_STATE_URL": store, "IMSNB_STATE_ALLOW_TARGET": "1", **target})
    assert allowed.returncode == 0 and "schema created" in allowed.stdout, allowed.stderr


# ---------------------------------------------------------------- schema and migrations


def test_state_init_creates_the_schema_and_migrate_says_it_is_current(store_server, store):
    created = imsnb("state", "init", env={"IMSNB_STATE_URL": store})
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"{store_name(store)}: schema created (version {LATEST})"
    again = imsnb("state", "migrate", env={"IMSNB_STATE_URL": store})
    assert again.stdout.strip() == f"{store_name(store)}: schema already current (version {LATEST}); nothing to do"
    assert rows(store_server, store, "SELECT version, name FROM imsnb_schema ORDER BY version") == [
        (m.version, m.name) for m in MIGRATIONS
    ]
    status = imsnb("state", "status", env={"IMSNB_STATE_URL": store}).stdout
    assert f"schema: version {LATEST}" in status and "runs           0 row(s)" in status
    assert store_server.password not in created.stdout + again.stdout + status


def test_a_history_file_of_before_is_adopted_as_it_is_and_a_newer_store_refused(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the schema imsnb.history created before the store had versions
        conn.execute(
            "CREATE TABLE snapshots (id INTEGER PRIMARY KEY, target TEXT NOT NULL, source TEXT NOT NULL, "
            "taken_at REAL NOT NULL, taken_by TEXT NOT NULL, epoch TEXT NOT NULL, data BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO snapshots VALUES (1, 't', 's', 1.0, 'x', 'e', x'789c03000000000001')")
    conn.close()
    assert open_store(path).migrate() == (0, LATEST)
    assert History(path).count() == 1, "the snapshot of before is kept"
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO imsnb_schema VALUES (99, 'from a newer imsnb', 0)")
    conn.close()
    with pytest.raises(StoreError, match="has schema version 99, newer than this imsnb knows"):
        History(path).count()


def test_workers_opening_a_new_store_at_once_migrate_it_once(store_server):
    url = new_store(store_server)
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            History(url).count()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert rows(store_server, url, "SELECT version FROM imsnb_schema ORDER BY version") == [
        (m.version,) for m in MIGRATIONS
    ]


# ---------------------------------------------------------------- the history on both dialects


def _observed(history: History) -> tuple:
    """What the history's public calls return for the same writes (times relative to `now`)."""
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    target, source = "db.internal:5432/app", "statements"
    history.add(*(Snapshot(target, source, now - timedelta(minutes=m), "tests", "e1", {"m": m}) for m in (30, 20, 10)))
    nearest = history.nearest(
        target, source, now - timedelta(minutes=19), earliest=now - timedelta(hours=1), latest=now
    )
    stored = history.stored(target, source, earliest=now - timedelta(minutes=25), latest=now)
    newest = history.newest(target, source, earliest=now - timedelta(hours=1), latest=now, limit=2)
    loaded = history.load(stored[0])
    history.save_baseline(target, source, {"mean_ms": 1.5}, taken_by="tests", period={"basis": "sample"})
    history.save_baseline(target, source, {"mean_ms": 2.5}, taken_by="tests", period={"basis": "history"})
    baseline = history.baseline(target, source)
    added = [
        history.add_plans(target, {"42": (h, {"node": h})}, taken_at=now + timedelta(minutes=i), taken_by="tests")
        for i, h in enumerate(["seq", "seq", "index"])
    ]
    plans = history.plans(target, "42")
    return (
        nearest.data,
        [s.taken_at for s in stored],
        [snap.data for _, snap in newest],
        loaded.data,
        (baseline.data, baseline.period),
        added,
        [(p.plan_hash, p.first_seen, p.last_seen) for p in plans],
        history.count(),
    )


def test_the_history_keeps_the_same_promises_in_sqlite_and_postgresql(store_server, tmp_path):
    in_sqlite = _observed(History(tmp_path / "h.sqlite"))
    in_postgres = _observed(History(new_store(store_server)))
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert in_sqlite == in_postgres
    nearest, stored, newest, loaded, baseline, added, plans, count = in_postgres
    assert nearest == {"m": 20} and stored == [now - timedelta(minutes=20), now - timedelta(minutes=10)]
    assert newest == [{"m": 20}, {"m": 10}] and loaded == {"m": 20}
    assert baseline == ({"mean_ms": 2.5}, {"basis": "history"})
    assert added == [1, 0, 1], "a shape is stored when it changes, not each time it is seen"
    later = now + timedelta(minutes=2)
    assert plans == [("seq", now, now + timedelta(minutes=1)), ("index", later, later)]
    assert count == 3


# ---------------------------------------------------------------- an unreachable store


def test_an_unreachable_store_is_a_warning_finding_and_the_run_goes_on(degraded, monkeypatch):
    from imsnb import sampling
    from imsnb.postgres import Database
    from imsnb.window import Window

    port = free_port()
    monkeypatch.setenv("IMSNB_STATE_URL", f"postgresql://imsnb:N0tThisStorePw@127.0.0.1:{port}/imsnb_state")
    window = Window(present_began(degraded), datetime.now(UTC))  # the present only: the history is asked for
    with Database("tests") as db:
        sample = sampling.Sample(0.5, db=db, window=window)
        top = sample.statements(limit=5)
        period = sample.period(sampling.PG_STATEMENTS)
    assert not top.empty and period.basis == "sample", "the run's own sample stands in for the history"
    finding = sample.store_finding()
    assert finding.check == "host.state_store" and finding.severity == Severity.WARNING
    assert f"postgresql://127.0.0.1:{port}/imsnb_state" in finding.message
    assert "4 snapshot(s) of this run not written" in finding.message and finding.value == 4
    assert "history and baseline not read or kept" in finding.message
    assert "N0tThisStorePw" not in finding.message and "imsnb:" not in finding.message
    assert sample.store_finding() is None, "said once"


# ---------------------------------------------------------------- the run catalogue


def test_index_and_archive_list_show_the_runs_of_another_outputs_folder(store, tmp_path):
    here, there = tmp_path / "worker-a", tmp_path / "worker-b"
    mine = fake_run(here, [("cache.evictions", "WARNING")], incident="INC-CAT")
    theirs = fake_run(there, [("cache.hit_rate", "ERROR")], name="health_check", incident="INC-CAT")
    only_there = fake_run(there, [("cache.hit_rate", "OK")], name="health_check", incident="INC-THERE")
    for run in (mine, theirs, only_there):
        assert record_run(run.folder, run.summary) is None
    [incident] = [i for i in archive.list_incidents(here) if i.id == "INC-CAT"]
    assert len(incident.runs) == 2 and incident.worst == "ERROR"
    remote = next(r for r in incident.runs if r.get("remote"))
    assert remote["worker"] == worker_name() and remote["location"] == str(theirs.folder.resolve())
    assert "INC-THERE" in [i.id for i in archive.list_incidents(here)], "an incident only another worker ran"
    page = archive.write_index(here / "INC-CAT").read_text()
    assert f"on {worker_name()}: <code>{theirs.folder.resolve()}</code>" in page
    assert 'href="20261129T000000Z-redis_cache/report.html"' in page, "this folder's run is linked"
    listed = imsnb("archive", "list", "--outputs", str(tmp_path / "nothing-here"), env={"IMSNB_STATE_URL": store})
    assert listed.returncode == 0, listed.stderr
    assert any(
        line.startswith("INC-CAT ") and "ERROR" in line and "2 run(s)" in line for line in listed.stdout.splitlines()
    )


def test_the_catalogue_keeps_runs_for_its_days(store_server, store, tmp_path, monkeypatch):
    """IMSNB_CATALOGUE_DAYS (default 90): a run recorded longer ago leaves the catalogue when the next is recorded
    (its folder stays where it is, and in the archive); a bad value is said and records nothing."""
    old, new = (fake_run(tmp_path / name, [("cache.evictions", "WARNING")], incident=f"INC-{name}") for name in "ab")
    assert record_run(old.folder, old.summary) is None
    assert rows(store_server, store, "UPDATE runs SET recorded_at = recorded_at - 91 * 86400 RETURNING incident") == [
        ("INC-a",)
    ]
    assert record_run(new.folder, new.summary) is None
    assert rows(store_server, store, "SELECT incident FROM runs") == [("INC-b",)]
    monkeypatch.setenv("IMSNB_CATALOGUE_DAYS", "ninety")
    problem = record_run(old.folder, old.summary)
    assert "IMSNB_CATALOGUE_DAYS must be a positive number of days (e.g. 90), not 'ninety'" in problem
    assert rows(store_server, store, "SELECT incident FROM runs") == [("INC-b",)]


def test_a_run_not_recorded_is_said_and_its_folder_kept(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("IMSNB_STATE_URL", f"postgresql://imsnb:N0tThisStorePw@127.0.0.1:{port}/imsnb_state")
    run = fake_run(tmp_path, [("cache.evictions", "WARNING")])
    problem = record_run(run.folder, run.summary)
    assert problem.startswith(f"run {run.folder.name} not recorded in the store: store postgresql://127.0.0.1:{port}/")
    assert "N0tThisStorePw" not in problem and (run.folder / "summary.json").is_file()


# ---------------------------------------------------------------- the notification state in the store


@pytest.fixture(scope="module")
def stand_ins():
    servers = {"slack": Slack(WEBHOOK_TOKEN), "pagerduty": PagerDuty(ROUTING_KEY)}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture
def routed(stand_ins, tmp_path, monkeypatch):
    config = tmp_path / "imsnb.toml"
    config.write_text(f'[notify.slack]\n[notify.pagerduty]\nurl = "{stand_ins["pagerduty"].events_url}"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    monkeypatch.setenv("IMSNB_SLACK_WEBHOOK_URL", stand_ins["slack"].webhook_url)
    monkeypatch.setenv("IMSNB_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    return stand_ins


def test_the_notification_state_lives_in_the_store_not_the_outputs_folder(routed, store_server, store, tmp_path):
    before = len(routed["pagerduty"].events())
    for outputs in (tmp_path / "worker-a", tmp_path / "worker-b"):  # two outputs folders, one state
        notify.deliver([fake_run(outputs, [("cache.evictions", "CRITICAL")])], mode="changes")
        assert not (outputs / ".notify").exists()
    events = routed["pagerduty"].events()[before:]
    assert [e["event_action"] for e in events] == ["trigger"], "the second folder's run found it paged already"
    kept = rows(store_server, store, "SELECT key, severity, paged FROM notify_checks")
    assert kept == [("prod/cache|cache.evictions", "CRITICAL", True)]
    notify.deliver([fake_run(tmp_path / "worker-b", [("cache.evictions", "OK")])], mode="changes")
    assert [e["event_action"] for e in routed["pagerduty"].events()[before:]] == ["trigger", "resolve"]
    assert rows(store_server, store, "SELECT count(*) FROM notify_checks") == [(0,)]


def test_an_unreachable_store_notifies_as_if_nothing_had_been_sent(routed, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("IMSNB_STATE_URL", f"postgresql://imsnb:N0tThisStorePw@127.0.0.1:{port}/imsnb_state")
    said: list[str] = []
    before = len(routed["pagerduty"].events())
    notify.deliver([fake_run(tmp_path, [("cache.evictions", "CRITICAL")])], mode="changes", warn=said.append)
    assert [e["event_action"] for e in routed["pagerduty"].events()[before:]] == ["trigger"], "too many, never too few"
    [line] = [s for s in said if "notification state" in s]
    assert line.startswith("imsnb: warning: notification state not used: store postgresql://127.0.0.1:")
    assert line.endswith("notifying as if nothing had been sent") and "N0tThisStorePw" not in line
