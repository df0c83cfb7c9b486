"""imsnb.cache.replication against a real master and replica (redis-servers of the module's own): caught up, a
replica that stopped acknowledging, the replica's own view with its link up and down, a lone master; and the
judge's rules without a server."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
from helpers import wait_until

from imsnb import cache
from imsnb.findings import Severity
from imsnb.sandbox.redis import RedisServer


def _cache(server: RedisServer) -> cache.Cache:
    return cache.Cache("tests", settings={"host": "127.0.0.1", "port": server.port, "password": server.password})


@pytest.fixture(scope="module")
def pair():
    """A master and a replica of it, the replica online and caught up."""
    master, replica = RedisServer().start(), RedisServer().start()
    try:
        master.client().config_set("repl-diskless-sync-delay", 0)  # the first sync at once, not after 5 s
        client = replica.client()
        client.config_set("masterauth", master.password)  # the sandbox's servers require a password
        client.replicaof("127.0.0.1", master.port)
        with _cache(master) as c:
            wait_until(lambda: _caught_up(c), 20, what="an online replica, caught up")
        yield master, replica
    finally:
        replica.stop()
        master.stop()


def _caught_up(c: cache.Cache) -> cache.Replication | None:
    repl = cache.replication(c)
    online = len(repl.replicas) and (repl.replicas["state"] == "online").all()
    return repl if online and repl.replicas["behind_bytes"].sum() == 0 else None


@pytest.mark.servers
def test_a_replica_caught_up_is_ok_and_named(pair):
    master, replica = pair
    master.client().set("order:1", "paid")
    with _cache(master) as c:
        repl = wait_until(lambda: _caught_up(c), 10, what="the replica to acknowledge the write")
    assert (repl.role, repl.backlog_bytes) == ("master", 2**20)
    assert repl.replicas[["replica", "state", "behind_bytes"]].to_dict("records") == [
        {"replica": f"127.0.0.1:{replica.port}", "state": "online", "behind_bytes": 0}
    ]
    finding = cache.replication_lag_finding(repl)
    assert (finding.severity, finding.component, finding.unit) == (Severity.OK, "cache", "s")
    assert f"replica 127.0.0.1:{replica.port} (online): last acknowledgement" in finding.message


@pytest.mark.servers
def test_a_replica_that_stopped_acknowledging_is_a_warning_naming_it(pair, monkeypatch):
    """The replica frozen (SIGSTOP): it acknowledges nothing while the master writes 600,000 bytes; with the level at
    2 s (the catalogue's is Redis's 10 s), the finding warns once two seconds pass without an acknowledgement."""
    master, replica = pair
    monkeypatch.setenv("IMSNB_THRESHOLD_CACHE_REPLICATION_LAG", "2")
    with _cache(master) as c:
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            master.client().set("report:daily", b"x" * 600_000)
            repl = wait_until(
                lambda: (r := cache.replication(c)).replicas["lag_s"].max() >= 2 and r, 10, what="2 s of silence"
            )
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        wait_until(lambda: _caught_up(c), 10, what="the replica to catch up once it runs again")
    (behind,) = repl.replicas["behind_bytes"]
    assert 600_000 <= behind < 601_000
    finding = cache.replication_lag_finding(repl)
    assert finding.severity == Severity.WARNING and finding.value >= 2
    assert finding.message == (
        f"replica 127.0.0.1:{replica.port} (online): last acknowledgement {finding.value} s ago (kept under 2 s), "
        f"{behind:,} bytes behind the master, {behind / 2**20:.0%} of the 1,048,576-byte backlog"
    )


@pytest.mark.servers
def test_the_replicas_own_view_names_its_master_and_a_link_down(pair):
    master, replica = pair
    with _cache(replica) as c:
        up = cache.replication(c)
        assert (up.role, up.master, up.link) == ("replica", f"127.0.0.1:{master.port}", "up")
        assert cache.replication_lag_finding(up).severity == Severity.OK
        replica.client().config_set("masterauth", "wrong")  # the link drops and cannot come back
        replica.client().execute_command("CLIENT", "KILL", "TYPE", "master")
        try:
            down = wait_until(lambda: (r := cache.replication(c)).link == "down" and r, 10, what="the link down")
        finally:
            replica.client().config_set("masterauth", master.password)
    finding = cache.replication_lag_finding(down)
    assert finding.severity == Severity.WARNING
    assert finding.message.startswith(f"replica of 127.0.0.1:{master.port}: its link is down")
    with _cache(master) as c:
        wait_until(lambda: _caught_up(c), 20, what="the replica back online")


@pytest.mark.servers
def test_a_lone_master_has_nothing_to_lag():
    server = RedisServer().start()
    try:
        with _cache(server) as c:
            repl = cache.replication(c)
    finally:
        server.stop()
    assert repl.role == "master" and repl.replicas.empty
    finding = cache.replication_lag_finding(repl)
    assert (finding.severity, finding.message) == (Severity.OK, "no replica is attached to this master: nothing to lag")


def _master(state: str, lag_s: int) -> cache.Replication:
    row = {"replica": "10.0.0.2:6379", "state": state, "lag_s": lag_s, "behind_bytes": 0}
    return cache.Replication(role="master", backlog_bytes=1000, replicas=pd.DataFrame([row]))


def test_the_judges_levels_and_a_replica_not_online():
    levels = [cache.replication_lag_finding(_master("online", lag)).severity for lag in (1, 10, 60, 300)]
    assert levels == [Severity.OK, Severity.WARNING, Severity.ERROR, Severity.CRITICAL]
    assert cache.replication_lag_finding(_master("wait_bgsave", 0)).severity == Severity.WARNING


def test_a_replica_not_online_is_not_hidden_behind_an_online_one():
    rows = [
        {"replica": "10.0.0.2:6379", "state": "online", "lag_s": 1, "behind_bytes": 0},
        {"replica": "10.0.0.3:6379", "state": "wait_bgsave", "lag_s": 0, "behind_bytes": 0},
    ]
    info = {"role": "master", "master_repl_offset": 0, "repl_backlog_size": 1000}
    info |= {f"slave{i}": {"ip": r["replica"].split(":")[0], "port": 6379, "state": r["state"], "lag": r["lag_s"],
                           "offset": 0} for i, r in enumerate(rows)}  # fmt: skip

    class Answers:  # INFO replication as redis-py parses it: the order replicas are listed in must not matter
        def call(self, *args):
            return info

    finding = cache.replication_lag_finding(cache.replication(Answers()))
    assert finding.severity == Severity.WARNING and finding.message.startswith("replica 10.0.0.3:6379 (wait_bgsave)")


def test_a_replica_with_a_replica_of_its_own_judges_that_one_too():
    row = {"replica": "10.0.0.4:6379", "state": "online", "lag_s": 45, "behind_bytes": 0}
    middle = cache.Replication(
        role="replica", backlog_bytes=1000, replicas=pd.DataFrame([row]), master="10.0.0.1:6379", link="up"
    )
    finding = cache.replication_lag_finding(middle)
    assert finding.severity == Severity.WARNING and finding.message.startswith("replica 10.0.0.4:6379 (online)")
