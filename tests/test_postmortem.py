"""The post-mortem draft (`imsnb.archive.postmortem`) from an incident's archived runs: real run folders with
summary.json files and the postmortem.json people wrote, in a temporary archive."""

from __future__ import annotations

import json

import pytest

from imsnb.archive.postmortem import DRAFT, GAP, write_postmortem_draft
from imsnb.errors import BadParameter

SECRET = "hunter2-very-secret-password"


def _run(incident, folder: str, notebook: str, started: str, severity: str, findings=(), actions=()) -> None:
    path = incident / folder
    path.mkdir(parents=True)
    summary = {
        "notebook": notebook,
        "incident_id": incident.name,
        "status": "ok",
        "started_at": started,
        "severity": severity,
        "window": {"start": "2026-02-08T15:00:00Z", "end": started},
        "findings": [{"check": c, "component": c.split(".")[0], "severity": s, "message": m} for c, s, m in findings],
        "actions": list(actions),
    }
    (path / "summary.json").write_text(json.dumps(summary))


def test_the_draft_tells_the_incident_from_its_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    incident = tmp_path / "INC-PM"
    _run(
        incident,
        "20260208T153000Z-triage",
        "triage",
        "2026-02-08T15:30:00Z",
        "ERROR",
        findings=[
            ("api.error_rate", "ERROR", "5xx error rate peaked at 4.20%"),
            ("postgres.connections_used", "OK", "fine"),
        ],
    )
    rollback = {
        "id": "r1",
        "action": "ecs_rollback",
        "target": "ims-production/ims-backend",
        "status": "applied",
        "approver": "jane.oncall",
        "planned_at": "2026-02-08T15:41:00Z",
        "applying_at": "2026-02-08T15:41:05Z",
        "finished_at": "2026-02-08T15:41:09Z",
        "detail": "ims-production/ims-backend now deploys orders-task:6",
    }
    stuck = {**rollback, "id": "r2", "action": "rds_failover", "target": "ims-postgres-cluster", "status": "applying"}
    planned = {**rollback, "id": "r3", "action": "redis_flushdb", "target": "redis db 0", "status": "planned"}
    _run(
        incident,
        "20260208T154000Z-high_error_rate",
        "high_error_rate",
        "2026-02-08T15:40:00Z",
        "ERROR",
        findings=[
            ("aws.change_correlation", "WARNING", "errors rose from 0.10% to 4.2% 90 s after deployment orders-task:7"),
            ("aws.logs.error_rate", "ERROR", f"connection refused for ims:{SECRET}@db"),
        ],
        actions=[rollback, stuck, planned],
    )
    (incident / "postmortem.json").write_text(
        json.dumps({"root_cause": "a bad release", "action_items": ["add a canary"]})
    )

    path = write_postmortem_draft("INC-PM", tmp_path)
    assert path == incident / DRAFT
    text = path.read_text()
    assert text.startswith("# Post-mortem draft: INC-PM\n")
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Summary",
        "## Impact window",
        "## Detection",
        "## Timeline (UTC)",
        "## Causes imsnb named",
        "## Actions taken",
        "## Open action items",
    ]
    assert "Worst severity: **ERROR**." in text and "Root cause: a bad release" in text
    assert f"Impact: {GAP}" in text
    assert "What the runs looked at: 2026-02-08T15:00:00Z – 2026-02-08T15:40:00Z UTC (40 min)." in text
    assert "First finding above OK: ERROR `api.error_rate` in `triage` at 2026-02-08T15:30:00Z" in text
    causes = text.split("## Causes imsnb named", 1)[1].split("##", 1)[0]
    assert "`aws.change_correlation` (high_error_rate, 2026-02-08T15:40:00Z): errors rose" in causes
    assert "api.error_rate" not in causes  # a symptom, not a cause
    assert "| 2026-02-08T15:41:05Z | ecs_rollback | ims-production/ims-backend | applied | jane.oncall |" in text
    assert "Planned, not applied: redis_flushdb on redis db 0" in text
    assert "- [ ] check ims-postgres-cluster by hand: rds_failover was still `applying`" in text
    assert "- [ ] still ERROR at the last `high_error_rate` run: `aws.logs.error_rate`" in text
    assert "- [ ] add a canary" in text
    assert "connections_used" not in text  # OK findings are not the incident's story
    assert SECRET not in text


def test_an_unknown_incident_is_one_line_bad_input(tmp_path):
    (tmp_path / "INC-OTHER").mkdir()
    with pytest.raises(BadParameter) as refused:
        write_postmortem_draft("INC-NONE", tmp_path)
    assert "no runs for incident 'INC-NONE'" in str(refused.value) and "\n" not in str(refused.value)


def test_the_cli_writes_the_draft_and_attaches_it_to_the_ticket(tmp_path, monkeypatch, capsys):
    from notify_servers import Jira

    from imsnb.cli import main

    incident = tmp_path / "INC-CLI"
    _run(
        incident,
        "20260208T153000Z-triage",
        "triage",
        "2026-02-08T15:30:00Z",
        "ERROR",
        findings=[("api.error_rate", "ERROR", "5xx error rate peaked at 4.20%")],
    )
    jira = Jira("bot@example.test", "jira-token-123456", "OPS-7")
    try:
        for name, value in (
            ("JIRA_URL", jira.url),
            ("JIRA_USER", "bot@example.test"),
            ("JIRA_API_TOKEN", "jira-token-123456"),
        ):
            monkeypatch.setenv(name, value)
        assert main(["archive", "postmortem", "INC-CLI", "--outputs", str(tmp_path), "--ticket", "OPS-7"]) == 0
        out = capsys.readouterr().out
        assert f"wrote {incident / DRAFT}" in out and "OPS-7: 1 attachment(s)" in out
        ((field, filename, content),) = jira.attachments
        assert (field, filename) == ("file", DRAFT)
        assert content == (incident / DRAFT).read_bytes() and b"5xx error rate peaked at 4.20%" in content
        assert main(["archive", "postmortem", "INC-NONE", "--outputs", str(tmp_path)]) == 2
    finally:
        jira.close()


def test_a_postmortem_written_on_one_worker_is_every_workers_and_the_last_written_wins(tmp_path, monkeypatch):
    """Two workers (their own outputs folders, one shared store): what people wrote in postmortem.json on A is in
    B's index and draft, said to come from A; a later one written on B is then A's too; no file is overwritten and
    the store keeps the fields scrubbed."""
    import os
    import sqlite3
    import zlib

    from imsnb.runs import index

    monkeypatch.setenv("DB_PASSWORD", SECRET)
    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    a, b = tmp_path / "a" / "INC-SHARED", tmp_path / "b" / "INC-SHARED"
    _run(a, "20260208T153000Z-triage", "triage", "2026-02-08T15:30:00Z", "ERROR")
    _run(b, "20260208T154000Z-db_performance", "db_performance", "2026-02-08T15:40:00Z", "WARNING")
    written_a = {"root_cause": f"pool exhausted; password {SECRET} pasted", "action_items": ["raise the pool"]}
    (a / "postmortem.json").write_text(json.dumps(written_a))
    os.utime(a / "postmortem.json", (1_800_000_000, 1_800_000_000))
    index.write_index(a)
    page_b = index.write_index(b).read_text()
    assert "pool exhausted" in page_b and "raise the pool" in page_b and SECRET not in page_b
    assert f"in {(a / 'postmortem.json').resolve()}" in page_b, "B says where the post-mortem was written"
    assert not (b / "postmortem.json").exists(), "nothing is written into B's folder"
    draft = write_postmortem_draft("INC-SHARED", tmp_path / "b").read_text()
    assert "pool exhausted" in draft and SECRET not in draft
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        (blob,) = conn.execute("SELECT fields FROM postmortems").fetchone()
    assert SECRET not in zlib.decompress(blob).decode() and "pool exhausted" in zlib.decompress(blob).decode()

    (b / "postmortem.json").write_text(json.dumps({"root_cause": "a deploy doubled the workers"}))
    os.utime(b / "postmortem.json", (1_800_000_600, 1_800_000_600))
    index.write_index(b)
    page_a = index.write_index(a).read_text()
    assert "a deploy doubled the workers" in page_a and "pool exhausted" not in page_a
    os.utime(a / "postmortem.json", (1_800_000_300, 1_800_000_300))  # A's file, older than B's: B's still wins
    assert "a deploy doubled the workers" in index.write_index(a).read_text()
    assert json.loads((a / "postmortem.json").read_text()) == written_a, "A's file is as its author left it"


def test_an_unusable_store_shows_this_folders_postmortem(tmp_path, monkeypatch, caplog):
    from imsnb.runs import index

    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/a-file/state.sqlite")
    incident = tmp_path / "INC-LOCAL"
    _run(incident, "20260208T153000Z-triage", "triage", "2026-02-08T15:30:00Z", "ERROR")
    (incident / "postmortem.json").write_text(json.dumps({"root_cause": "the disk filled"}))
    page = index.write_index(incident).read_text()
    assert "the disk filled" in page and "Post-mortem as written" not in page
    assert any("post-mortem of other workers not read" in r.getMessage() for r in caplog.records)


def test_another_workers_postmortem_is_scrubbed_of_this_workers_secrets(tmp_path, monkeypatch):
    """Worker A does not know B's database password, pasted into A's postmortem.json: B's index never shows it."""
    from imsnb.runs import index

    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    a, b = tmp_path / "a" / "INC-X", tmp_path / "b" / "INC-X"
    _run(a, "20260208T153000Z-triage", "triage", "2026-02-08T15:30:00Z", "ERROR")
    _run(b, "20260208T154000Z-triage", "triage", "2026-02-08T15:40:00Z", "ERROR")
    (a / "postmortem.json").write_text(json.dumps({"root_cause": f"B's password {SECRET} pasted on A"}))
    index.write_index(a)  # A does not know B's secret
    monkeypatch.setenv("DB_PASSWORD", SECRET)  # B does
    page = index.write_index(b).read_text()
    assert "pasted on A" in page and SECRET not in page
