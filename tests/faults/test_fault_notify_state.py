"""The notification state (outputs/.notify/state.json) decides what is not sent again, so whoever can write it can
silence pages. A malformed file, a file another user owns or can write, an outputs folder another user owns or
everyone can write: one warning, and the run notifies as if nothing had been sent. PagerDuty is the stand-in of
tests/notify_servers.py; the runs are summaries written as a notebook would."""

from __future__ import annotations

import json
import os
import stat

import pytest
from notify_servers import PagerDuty
from test_fault_delivery import fake_run

from imsnb import notify

ROUTING_KEY = "StateRoutingKeyPagerDuty01234567"
NOBODY = 65534
STATE, LEGACY = ".notify/state.json", ".notify-state.json"  # where it is kept, where versions before kept it
PLANTED = {
    "version": 1,
    "checks": {
        "prod/cache|cache.evictions": {
            "target": "prod/cache",
            "check": "cache.evictions",
            "notebook": "redis_cache",
            "severity": "CRITICAL",
            "paged": True,
            "since": "2026-11-29T00:00:00Z",
            "updated": "2026-11-29T00:00:00Z",
        }
    },
    "failed": [],
}


@pytest.fixture(scope="module")
def pagerduty():
    stand_in = PagerDuty(ROUTING_KEY)
    yield stand_in
    stand_in.close()


@pytest.fixture
def paging(pagerduty, tmp_path, monkeypatch):
    config = tmp_path / "imsnb.toml"
    config.write_text(f'[notify.pagerduty]\nurl = "{pagerduty.events_url}"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    monkeypatch.setenv("IMSNB_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.delenv("IMSNB_PAGERDUTY_URL", raising=False)
    return pagerduty


def deliver_critical(outputs, warnings: list[str]) -> list[dict]:
    run = fake_run(outputs, [("cache.evictions", "CRITICAL")])
    return notify.deliver([run], mode="changes", warn=warnings.append)


def paged(records: list[dict]) -> list[str]:
    return [r["detail"] for r in records if r["channel"] == "pagerduty" and r["status"] == "sent"]


@pytest.mark.parametrize(
    "content, why",
    [
        (
            json.dumps(
                {**PLANTED, "checks": {"k": {**PLANTED["checks"]["prod/cache|cache.evictions"], "severity": "BOGUS"}}}
            ),
            "severity 'BOGUS'",
        ),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"version": 1, "checks": []}), "checks is not an object"),
        (json.dumps({"version": 1, "checks": {"k": {"target": "t"}}}), "checks['k'].check is not a string"),
        (json.dumps({**PLANTED, "failed": ["fax"]}), "is not a list of destinations"),
    ],
    ids=["bogus-severity", "not-json", "a-list", "checks-a-list", "entry-without-check", "unknown-destination"],
)
@pytest.mark.parametrize("where", [STATE, LEGACY])
def test_a_malformed_state_is_set_aside_with_one_warning_and_the_page_goes_out(paging, tmp_path, content, why, where):
    outputs = tmp_path / "out"
    (outputs / ".notify").mkdir(parents=True, mode=0o700)
    planted = outputs / where
    planted.write_text(content)
    warnings: list[str] = []
    records = deliver_critical(outputs, warnings)
    assert paged(records) == ["trigger imsnb/prod/cache/cache.evictions"], records
    assert len(warnings) == 1 and why in warnings[0] and f"set aside as {planted.name}.bad-" in warnings[0], warnings
    [aside] = planted.parent.glob(f"{planted.name}.bad-*")
    assert aside.read_text() == content, "the bad file is kept for a person to read"
    assert json.loads((outputs / STATE).read_text())["checks"]["prod/cache|cache.evictions"]["paged"]


def test_state_is_0600_in_a_folder_only_its_owner_can_write(paging, tmp_path):
    outputs = tmp_path / "out"
    outputs.mkdir(mode=0o775)  # a group-writable outputs folder (umask 002) is fine: the state has its own
    deliver_critical(outputs, [])
    folder, path = outputs / ".notify", outputs / ".notify" / "state.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()


def test_a_state_planted_in_a_folder_everyone_can_write_does_not_silence_the_page(paging, tmp_path):
    outputs = tmp_path / "imsnb-outputs"
    (outputs / ".notify").mkdir(parents=True)
    os.chmod(outputs, 0o777)  # like a shared /tmp folder without the sticky bit
    for where in (STATE, LEGACY):
        (outputs / where).write_text(json.dumps(PLANTED))
    warnings: list[str] = []
    records = deliver_critical(outputs, warnings)
    assert paged(records) == ["trigger imsnb/prod/cache/cache.evictions"], records
    assert len(warnings) == 1 and "is writable by everyone (mode 777)" in warnings[0], warnings
    assert json.loads((outputs / ".notify" / "state.json").read_text()) == PLANTED, "nothing written back there"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root (CI runs as root)")
@pytest.mark.parametrize("where", [STATE, LEGACY])
def test_a_state_another_user_owns_does_not_silence_the_page(paging, tmp_path, where):
    # 1. the outputs folder is another user's (a /tmp/imsnb-outputs someone else created first)
    outputs = tmp_path / "theirs"
    (outputs / ".notify").mkdir(parents=True, mode=0o700)
    for where in (STATE, LEGACY):
        (outputs / where).write_text(json.dumps(PLANTED))
    for path in (outputs, outputs / ".notify", outputs / STATE, outputs / LEGACY):
        os.chown(path, NOBODY, NOBODY)
    warnings: list[str] = []
    records = deliver_critical(outputs, warnings)
    assert paged(records) == ["trigger imsnb/prod/cache/cache.evictions"], records
    assert len(warnings) == 1 and f"belongs to uid {NOBODY}, not to this user" in warnings[0], warnings
    # 2. our folder, but a state file another user put there
    outputs = tmp_path / "ours"
    (outputs / ".notify").mkdir(parents=True, mode=0o700)
    planted = outputs / where
    planted.write_text(json.dumps(PLANTED))
    os.chown(planted, NOBODY, NOBODY)
    warnings = []
    records = deliver_critical(outputs, warnings)
    assert paged(records) == ["trigger imsnb/prod/cache/cache.evictions"], records
    assert len(warnings) == 1 and f"it belongs to uid {NOBODY}" in warnings[0] and "set aside" in warnings[0]
    assert (outputs / STATE).stat().st_uid == os.geteuid(), "this run's own state replaces it"


@pytest.mark.parametrize("where", [STATE, LEGACY])
def test_a_state_others_can_write_is_refused(paging, tmp_path, where):
    outputs = tmp_path / "out"
    (outputs / ".notify").mkdir(parents=True, mode=0o700)
    planted = outputs / where
    planted.write_text(json.dumps(PLANTED))
    os.chmod(planted, 0o666)
    warnings: list[str] = []
    records = deliver_critical(outputs, warnings)
    assert paged(records) == ["trigger imsnb/prod/cache/cache.evictions"], records
    assert len(warnings) == 1 and "others can write it (mode 666)" in warnings[0], warnings
