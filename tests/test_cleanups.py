"""The runbook's clean-ups as two-key actions, on real stand-ins: CloudWatch log retention on a moto server over
HTTP (`imsnb.actions.logs`), and old logs on this host (`imsnb.actions.host_disk`) in a temporary root with real
files and symlinks, archived to moto's S3 and verified before anything is deleted."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from helpers import read_summary

from imsnb import actions, started_with
from imsnb.aws import Aws, logs
from imsnb.errors import BadParameter
from imsnb.runs.execute import run_notebook
from imsnb.sandbox.aws import RDS_INSTANCE, AwsServer

pytestmark = pytest.mark.servers  # a moto server

BUCKET = "ims-backups"
DAY = 86400


@pytest.fixture(scope="module")
def moto():
    server = AwsServer()
    server.launch()
    server.wait()
    server.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto, monkeypatch):
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    return Aws("tests")


@pytest.fixture
def run_key(monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key


def _groups(moto, retention: dict[str, int | None]) -> None:
    client = moto.client("logs")
    for group, days in retention.items():
        existing = client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        if not any(g["logGroupName"] == group for g in existing):
            client.create_log_group(logGroupName=group)
        if days is None:
            client.delete_retention_policy(logGroupName=group)
        else:
            client.put_retention_policy(logGroupName=group, retentionInDays=days)


def _kept(moto, group: str) -> int | None:
    (found,) = [g for g in moto.client("logs").describe_log_groups()["logGroups"] if g["logGroupName"] == group]
    return found.get("retentionInDays")


# --- log retention -----------------------------------------------------------------------------------------------


def test_log_retention_plans_apply_with_both_keys_and_undo_to_what_was_there(moto, aws, run_key):
    _groups(moto, {"/ims/application": 30, "/ims/nginx": None, "/ims/database": 90})
    plans = actions.retention_actions(logs.retention("/ims", aws=aws), aws=aws)
    by_group = {p.target: p for p in plans}
    assert sorted(by_group) == ["/ims/database", "/ims/nginx"]  # /ims/application already keeps 30 days
    assert by_group["/ims/nginx"].undo == "aws logs delete-retention-policy --log-group-name /ims/nginx"
    assert by_group["/ims/database"].undo.endswith("--log-group-name /ims/database --retention-in-days 90")

    untouched = actions.execute(plans)  # no key turned: nothing changes
    assert set(untouched["status"]) == {"planned"}
    assert (_kept(moto, "/ims/nginx"), _kept(moto, "/ims/database")) == (None, 90)

    moto.client("logs").put_retention_policy(logGroupName="/ims/database", retentionInDays=60)  # someone else
    outcome = actions.execute(plans, apply_actions=True, approver="jane.oncall").set_index("target")
    assert outcome.loc["/ims/nginx", "status"] == "applied"
    assert outcome.loc["/ims/nginx", "detail"] == "/ims/nginx: kept 30 days (was forever (no retention policy))"
    assert outcome.loc["/ims/database", "status"] == "skipped"
    assert "retention changed since the plan (90 days → 60 days)" in outcome.loc["/ims/database", "detail"]
    assert (_kept(moto, "/ims/nginx"), _kept(moto, "/ims/database")) == (30, 60)


# --- old logs on the host ----------------------------------------------------------------------------------------


def _file(path: Path, days_old: float, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size // 2).hex().encode()[:size])
    stamp = time.time() - days_old * DAY
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def host_logs(tmp_path):
    """A log root with old and new logs, a non-log file, and symlinks (a file and a directory) pointing out of it."""
    root, outside = tmp_path / "var-log", tmp_path / "elsewhere"
    files = {
        "old4": _file(root / "nested" / "deep" / "old4.log", 60, 4000),
        "old1": _file(root / "app" / "old1.log", 40, 1000),
        "old2": _file(root / "app" / "old2.log", 35, 2000),
        "old3": _file(root / "app" / "old3.log", 31.5, 3000),
        "new": _file(root / "new.log", 2, 500),
        "text": _file(root / "old.txt", 40, 500),
        "outside": _file(outside / "secret.log", 90, 700),
    }
    (root / "link.log").symlink_to(files["outside"])
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    originals = {name: path.read_bytes() for name, path in files.items()}
    return root, files, originals


def test_candidates_stay_under_the_root_never_follow_symlinks_and_respect_the_caps(host_logs):
    root, files, _ = host_logs
    found = actions.cleanup_candidates([str(root)], max_files=2)
    assert found["path"].tolist() == [str(files[n]) for n in ("old4", "old1", "old2", "old3")]  # oldest first
    assert found["within_cap"].tolist() == [True, True, False, False]
    assert found["note"].iloc[2].startswith("over this run's cap (2 files")
    by_bytes = actions.cleanup_candidates([str(root)], max_bytes=5500)
    assert by_bytes["within_cap"].tolist() == [True, True, False, False]
    for bad in ("/", "var/log", "/var/.."):
        with pytest.raises(BadParameter):
            actions.cleanup_candidates([bad])
    assert actions.missing_roots([str(root), str(root / "absent")]) == [str(root / "absent")]


def test_old_logs_are_archived_verified_and_only_then_deleted(host_logs, aws, run_key, tmp_path):
    root, files, originals = host_logs
    candidates = actions.cleanup_candidates([str(root)], max_files=3)
    (plan,) = actions.cleanup_actions(candidates, bucket=BUCKET, prefix="logs/", staging_dir=str(tmp_path), aws=aws)
    assert plan.target == str(root) and "3 *.log file(s)" in plan.reason

    assert actions.execute([plan])["status"].tolist() == ["planned"]  # one key missing: the list, nothing else
    assert all(path.exists() for path in files.values())

    with open(files["old2"], "ab") as handle:  # written to after the list was made: must be left alone
        handle.write(b"late line\n")
    (outcome,) = actions.execute([plan], apply_actions=True, approver="jane.oncall").to_dict(orient="records")
    assert outcome["status"] == "applied", outcome
    assert "MD5 verified" in outcome["detail"] and "2 deleted" in outcome["detail"]
    assert f"left alone: {files['old2']} (changed since the plan)" in outcome["detail"]

    key = outcome["detail"].split(f"s3://{BUCKET}/", 1)[1].split(" ", 1)[0]
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        archived = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert archived == {"nested/deep/old4.log": originals["old4"], "app/old1.log": originals["old1"]}
    assert not files["old4"].exists() and not files["old1"].exists()
    for kept in ("old2", "old3", "new", "text", "outside"):  # changed, over the cap, too new, not a log, outside
        assert files[kept].exists(), kept
    assert files["outside"].read_bytes() == originals["outside"] and (root / "link.log").is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("imsnb-logs-")] == []  # staging removed


def test_a_failed_upload_deletes_nothing(host_logs, aws, run_key, tmp_path):
    root, files, originals = host_logs
    candidates = actions.cleanup_candidates([str(root)])
    plans = actions.cleanup_actions(candidates, bucket="imsnb-no-such-bucket", staging_dir=str(tmp_path), aws=aws)
    (outcome,) = actions.execute(plans, apply_actions=True, approver="jane.oncall").to_dict(orient="records")
    assert outcome["status"] == "failed" and "NoSuchBucket" in outcome["detail"], outcome
    assert {name: path.read_bytes() for name, path in files.items()} == originals
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("imsnb-logs-")] == []


def test_a_directory_swapped_for_a_symlink_after_the_plan_is_not_followed(host_logs, aws, run_key, tmp_path):
    root, files, originals = host_logs
    decoy = _file(tmp_path / "elsewhere" / "app" / "old1.log", 40, 1000)
    decoyed = decoy.read_bytes()
    candidates = actions.cleanup_candidates([str(root)])
    plans = actions.cleanup_actions(candidates, bucket=BUCKET, staging_dir=str(tmp_path), aws=aws)
    (root / "app").rename(root / "app-moved")
    (root / "app").symlink_to(tmp_path / "elsewhere" / "app", target_is_directory=True)
    (outcome,) = actions.execute(plans, apply_actions=True, approver="jane.oncall").to_dict(orient="records")
    assert outcome["status"] == "applied" and "1 deleted" in outcome["detail"]  # old4 only: app/ is a symlink now
    assert decoy.read_bytes() == decoyed
    assert (root / "app-moved" / "old1.log").read_bytes() == originals["old1"]


def test_disk_usage_applies_both_clean_ups_with_both_keys(host_logs, moto, aws, tmp_path):
    root, files, _ = host_logs
    _groups(moto, {"/ims/application": 30, "/ims/nginx": None})
    moto.client("rds").create_db_instance(
        DBInstanceIdentifier=RDS_INSTANCE,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="ims",
        MasterUserPassword="not-a-secret-1",
    )
    parameters = {
        "cleanup_roots": f'["{root}"]',
        "scan_root": str(root),
        "log_root": str(root),
        "apply_actions": "True",
        "approver": "jane.oncall",
    }
    result = run_notebook(
        "disk_usage", parameters, incident_id="INC-DISK", outputs=tmp_path / "out", allow_actions=True
    )
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"
    done = {a["action"]: a for a in summary["actions"]}
    assert done["logs_retention"]["target"] == "/ims/nginx" and done["logs_retention"]["status"] == "applied"
    assert done["host_log_cleanup"]["status"] == "applied", done["host_log_cleanup"]
    assert "4 deleted" in done["host_log_cleanup"]["detail"]
    assert _kept(moto, "/ims/nginx") == 30
    assert not any(files[n].exists() for n in ("old1", "old2", "old3", "old4"))
    assert files["new"].exists() and files["outside"].exists()


def test_an_upload_whose_size_or_checksum_differs_is_not_verified(aws, tmp_path):
    archive = tmp_path / "logs.tar.gz"
    archive.write_bytes(b"archived logs" * 100)
    assert actions.upload_verified(aws, archive, BUCKET, "logs/check.tar.gz") == "1,300 bytes and MD5 verified"
    head = aws.call("s3", "head_object", Bucket=BUCKET, Key="logs/check.tar.gz")
    where = f"s3://{BUCKET}/logs/check.tar.gz"
    md5 = head["ETag"].strip('"')
    with pytest.raises(RuntimeError, match="holds 1300 bytes, the archive has 1301: nothing deleted"):
        actions.verified_upload(head, size=1301, md5_hex=md5, sha256_b64="", where=where)
    with pytest.raises(RuntimeError, match="MD5 \\(ETag\\) differs"):
        actions.verified_upload(head, size=1300, md5_hex="0" * 32, sha256_b64="", where=where)
    with pytest.raises(RuntimeError, match="no checksum to verify"):  # a multipart or KMS ETag is no MD5
        actions.verified_upload({**head, "ETag": '"abc-2"'}, size=1300, md5_hex=md5, sha256_b64="", where=where)
