"""The cache cluster upgrade (issue 17.2): moto's ElastiCache for the clusters and snapshot, two real
redis-servers for the old and the new node; the verification and checklist read what is really on them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from helpers import checks_at_or_above, every_byte, finding, read_summary

from imsnb import actions, cache_upgrade
from imsnb.errors import BadParameter
from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.sandbox.scenarios import UPGRADE_KEYS, UPGRADE_LATE_WRITES
from imsnb.window import parse_instant

pytestmark = pytest.mark.servers  # a cache-upgrade sandbox

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}


@pytest.fixture(scope="module")
def upgrade():
    with Sandbox("cache-upgrade") as sandbox:
        yield sandbox


@pytest.fixture
def env(upgrade, use_env, monkeypatch):
    use_env(upgrade)
    monkeypatch.delenv(actions.ALLOW_ENV, raising=False)
    return upgrade


def checklist(folder) -> dict[str, str]:
    """The switch checklist's rows from the report: the step's text and its box."""
    html = (folder / "report.html").read_text()
    rows = re.findall(r"<tr>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>(\[[ x]\])</td>", html)
    return {step.strip(): box for step, box in rows}


def test_the_current_cluster_is_short_and_the_new_node_lacks_the_late_writes(env, tmp_path):
    new = env.extra_env["IMSNB_SANDBOX_NEW_REDIS"]
    result = run_notebook("cache_cluster_upgrade", {"new_redis": new}, incident_id="INC-C", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"
    assert {"aws.elasticache.memory_used", "aws.elasticache.evictions"} <= checks_at_or_above(summary, "WARNING")
    ran_until = parse_instant(summary["window"]["end"])  # from the parameters, as papermill started the notebook
    for check in ("aws.elasticache.memory_used", "aws.elasticache.evictions"):  # CloudWatch over the 6 h queried
        period = finding(summary, check)["period"]
        assert period["basis"] == "window" and period["seconds"] == 6 * 3600
        assert timedelta(0) <= parse_instant(period["to"]) - ran_until < timedelta(seconds=60)
    assert [(a["action"], a["status"]) for a in summary["actions"]] == [
        ("elasticache_snapshot", "planned"),
        ("elasticache_create_cluster", "planned"),
    ]
    keys = finding(summary, "cache.key_counts")
    missing = UPGRADE_LATE_WRITES / UPGRADE_KEYS[1]
    assert keys["severity"] == "ERROR" and keys["value"] == missing and "worst db1 lacks 20" in keys["message"]
    counts = {r["db"]: (r["old_keys"], r["new_keys"]) for r in keys["evidence"]}
    assert counts[0] == (300, 300) and counts[1] == (200, 180), counts
    old, new = counts[2]  # cache entries: the old node evicted and expired some since the snapshot, lacks none
    assert 0 < old < new and set(counts) == {0, 1, 2}, counts
    assert checklist(result.folder)["Keys per db on the new node match the old one"] == "[ ]"
    assert env.redis.password.encode() not in every_byte(result.folder)
    clusters = env.aws.client("elasticache").describe_cache_clusters()["CacheClusters"]
    assert [c["CacheClusterId"] for c in clusters] == ["ims-redis"], "nothing was created without the keys"


def test_both_keys_snapshot_create_verify_and_tick_the_checklist(env, tmp_path):
    new_node = env.new_redis.client(1)
    for i in range(UPGRADE_KEYS[1] - UPGRADE_LATE_WRITES, UPGRADE_KEYS[1]):  # the late writes, replayed
        new_node.set(f"session:1:{i}", "s" * 100)
    parameters = {**KEYS, "new_redis": env.extra_env["IMSNB_SANDBOX_NEW_REDIS"], "snapshot_name": "ims-redis-up-1"}
    result = run_notebook(
        "cache_cluster_upgrade", parameters, incident_id="INC-C", outputs=tmp_path, allow_actions=True
    )
    summary = read_summary(result.folder)
    snapshot, create = summary["actions"]
    assert snapshot["status"] == "applied" and "ims-redis-up-1" in snapshot["detail"], snapshot
    assert create["status"] == "applied" and "available" in create["detail"], create
    ec = env.aws.client("elasticache")
    (made,) = ec.describe_cache_clusters(CacheClusterId="ims-redis-v2")["CacheClusters"]
    assert (made["CacheNodeType"], made["NumCacheNodes"]) == ("cache.t3.small", 1)
    assert ec.describe_snapshots(SnapshotName="ims-redis-up-1")["Snapshots"][0]["CacheClusterId"] == "ims-redis"
    assert finding(summary, "cache.key_counts")["severity"] == "OK"
    boxes = checklist(result.folder)
    ticked = [step for step, box in boxes.items() if box == "[x]"]
    assert ticked == [
        "Snapshot of ims-redis taken",
        "ims-redis-v2 created from it and available",
        "Keys per db on the new node match the old one",
    ], boxes
    assert any(step.startswith("Connection string updated to 127.0.0.1:") for step in boxes)

    again = run_notebook("cache_cluster_upgrade", parameters, incident_id="INC-C", outputs=tmp_path, allow_actions=True)
    snapshot, create = read_summary(again.folder)["actions"]
    assert snapshot["status"] == "skipped" and "already exists" in snapshot["detail"]
    assert create["status"] == "skipped" and "already exists" in create["detail"]


def test_nodes_are_named_by_address_and_never_carry_a_password(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://app:s3cret-value@10.0.0.1:6379/0")
    settings = cache_upgrade.redis_settings_for("10.0.0.9:6380/2")
    assert settings == {"username": "app", "password": "s3cret-value", "host": "10.0.0.9", "port": 6380, "db": 2}
    for bad in ("redis://:pw@host:6379", "host", "host:port"):
        with pytest.raises(BadParameter):
            cache_upgrade.redis_settings_for(bad)
