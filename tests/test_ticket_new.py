"""`--ticket new`: the incident's Jira issue, opened once from `[jira] project` with the verdict, the findings and the
escalation matrix's priority, then reused by every later run of the incident and by `imsnb archive postmortem INC
--ticket`. Against the Jira stand-in of tests/notify_servers.py, which checks the create-issue contract (Cloud REST
v3 with an ADF description, Server/Data Center REST v2 with a string), and a real run of health_check on the
session's db-degradation sandbox.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from notify_servers import Jira, adf_text

from imsnb import notify
from imsnb.archive.postmortem import DRAFT
from imsnb.cli import main
from imsnb.notify import jira
from imsnb.notify.message import Notice
from imsnb.runs.execute import RunResult

sys.path.insert(0, str(Path(__file__).parent / "faults"))
from secret_scan import assert_no_secrets  # noqa: E402

USER = "bot@example.test"
TOKEN = "ATATT3xJiraT0ken-ticket-new-91"
DB_SECRET = "db-Pa55word-in-a-finding-42"
THRESHOLD = "IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED"
# 24 of 30 connections are in use in db-degradation (0.8): ERROR with these levels
ERROR_LEVELS = {THRESHOLD: "0.5", f"{THRESHOLD}_ERROR": "0.55", f"{THRESHOLD}_CRITICAL": "0.99"}


def _configure(monkeypatch, tmp_path: Path, site: Jira, toml: str) -> Path:
    config = tmp_path / "imsnb.toml"
    config.write_text(toml)
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    monkeypatch.setenv("JIRA_URL", site.url)
    monkeypatch.setenv("JIRA_USER", USER)
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    monkeypatch.delenv("JIRA_DEPLOYMENT", raising=False)
    monkeypatch.delenv("IMSNB_TICKET", raising=False)
    return tmp_path / "outputs"


def _attached_to(site: Jira, key: str) -> list[str]:
    """The paths of the attachment requests to this issue, in order."""
    return [r["path"] for r in site.checked() if r["path"].endswith(f"/issue/{key}/attachments")]


def _fake_run(outputs: Path, incident: str, findings: list[tuple[str, str, str]]) -> RunResult:
    folder = outputs / incident / f"20261202T{len(list(outputs.rglob('summary.json'))):06d}Z-triage"
    folder.mkdir(parents=True)
    summary = {
        "notebook": "triage",
        "incident_id": incident,
        "status": "ok",
        "severity": findings[0][1],
        "findings": [{"check": c, "component": c.split(".")[0], "severity": s, "message": m} for c, s, m in findings],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.html").write_text("<html><body>report</body></html>")
    return RunResult(folder, summary, 1)


def test_a_run_opens_the_incidents_issue_once_and_later_runs_reuse_it(degraded, tmp_path, monkeypatch, capsys):
    site = Jira(USER, TOKEN, "OPS-999")  # Cloud, detected from serverInfo
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "OPS"\n')
        for name, value in ERROR_LEVELS.items():
            monkeypatch.setenv(name, value)
        run = ["run", "health_check", "--incident", "INC-TKT", "--outputs", str(outputs), "--ticket", "new"]

        assert main(run) == 1  # ERROR: at --fail-on
        out = capsys.readouterr().out
        assert "notify jira: sent (OPS-1: opened in OPS, priority High)" in out
        assert site.problems == []
        (issue,) = site.issues
        assert issue["key"] == "OPS-1" and issue["project"] == {"key": "OPS"}
        assert issue["issuetype"] == {"name": "Task"} and issue["priority"] == {"name": "High"}  # ERROR: Page on-call
        assert issue["summary"].startswith("[ERROR] INC-TKT: postgres.connections_used: ")
        assert "\n" not in issue["summary"] and len(issue["summary"]) <= jira.SUMMARY_MAX
        description = adf_text(issue["description"])
        assert "postgres.connections_used" in description and "respond within 5 min" in description
        assert [name for _, name, _ in site.attachments] == ["report.html", "summary.json"]
        assert len(_attached_to(site, "OPS-1")) == 1 and site.comments == []  # the description has the findings
        incident = outputs / "INC-TKT"
        ticket = json.loads((incident / "ticket.json").read_text())
        assert ticket["key"] == "OPS-1" and ticket["url"] == f"{site.url}/browse/OPS-1" and ticket["opened"]
        assert f'href="{site.url}/browse/OPS-1">OPS-1</a>' in (incident / "index.html").read_text()

        assert main(run) == 1  # the same incident again: the same issue, no second one
        out = capsys.readouterr().out
        assert "opened in" not in out and "notify jira: sent (OPS-1: 2 attachment(s))" in out
        assert len(site.issues) == 1 and len(_attached_to(site, "OPS-1")) == 2 and len(site.comments) == 1
        assert json.loads((incident / "ticket.json").read_text())["opened"] == ticket["opened"]

        assert main(["archive", "postmortem", "INC-TKT", "--outputs", str(outputs), "--ticket"]) == 0
        assert "OPS-1: 1 attachment(s)" in capsys.readouterr().out
        assert len(site.issues) == 1 and site.attachments[-1][1] == DRAFT
        assert site.problems == []

        bodies = [r["body"] for r in site.requests]
        assert_no_secrets([*bodies, *outputs.rglob("*")], [TOKEN])
        assert not any(TOKEN.encode() in r["body"] for r in site.requests)
    finally:
        site.close()


def test_server_gets_a_string_description_the_configured_priority_and_no_secret(tmp_path, monkeypatch):
    site = Jira(
        USER, TOKEN, "OPS-999", deployment="DataCenter", priorities=("P1", "P2", "P3"), issue_types=("Incident",)
    )
    try:
        toml = '[jira]\nproject = "OPS"\nissue_type = "Incident"\n[jira.priorities]\nCRITICAL = "P1"\nERROR = "P2"\n'
        outputs = _configure(monkeypatch, tmp_path, site, toml)
        monkeypatch.setenv("DB_PASSWORD", DB_SECRET)
        long = "primary unreachable\n" + "x" * 400 + f" postgres://ims:{DB_SECRET}@db"
        result = _fake_run(outputs, "INC-DC", [("postgres.reachable", "CRITICAL", long)])

        records = notify.deliver([result], mode="never", ticket="new")
        assert [r["status"] for r in records] == ["sent", "sent"], records
        assert site.problems == []
        (create,) = [r for r in site.checked() if r["path"] == "/rest/api/2/issue"]
        assert create["headers"]["authorization"] == f"Bearer {TOKEN}"
        (issue,) = site.issues
        assert issue["priority"] == {"name": "P1"} and issue["issuetype"] == {"name": "Incident"}
        assert isinstance(issue["description"], str) and issue["description"].startswith("{noformat}")
        assert "postgres.reachable" in issue["description"] and "respond within 1 min" in issue["description"]
        assert len(issue["summary"]) == jira.SUMMARY_MAX and "\n" not in issue["summary"]
        assert issue["summary"].startswith("[CRITICAL] INC-DC: postgres.reachable: primary unreachable xxx")
        assert len(_attached_to(site, issue["key"])) == 1
        # the run's own files are as the runner wrote them (scrubbed there); what imsnb writes to Jira is masked
        sent = [r["body"] for r in site.requests if not r["path"].endswith("/attachments")]
        assert_no_secrets([*sent, outputs / "INC-DC" / "ticket.json"], [TOKEN, DB_SECRET])
        assert all(TOKEN.encode() not in r["body"] for r in site.requests)
    finally:
        site.close()


def test_a_project_jira_lacks_is_one_failed_record_and_opens_nothing(tmp_path, monkeypatch):
    site = Jira(USER, TOKEN, "OPS-999", projects=("OPS",))
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "NOPE"\n')
        result = _fake_run(outputs, "INC-NOPE", [("api.error_rate", "ERROR", "5xx at 4.2%")])
        (record,) = notify.deliver([result], mode="never", ticket="new")
        assert record["status"] == "failed" and "valid project is required" in record["error"]
        assert site.issues == [] and site.attachments == [] and site.problems == []
        assert not (outputs / "INC-NOPE" / "ticket.json").exists()  # the next run tries to open it again
        assert json.loads((result.folder / "summary.json").read_text())["notifications"] == [record]
    finally:
        site.close()


def test_a_create_screen_without_priority_still_opens_the_issue(tmp_path, monkeypatch):
    site = Jira(USER, TOKEN, "OPS-999", priority_on_screen=False)
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "OPS"\n')
        result = _fake_run(outputs, "INC-PRIO", [("api.error_rate", "WARNING", "5xx at 1.2%")])
        records = notify.deliver([result], mode="never", ticket="new")
        assert records[0]["detail"] == "OPS-1: opened in OPS, no priority (not on the project's create screen)"
        (issue,) = site.issues
        assert "priority" not in issue and site.problems == []
    finally:
        site.close()


def test_postmortem_json_ticket_is_reused_and_no_issue_is_opened(tmp_path, monkeypatch):
    site = Jira(USER, TOKEN, "OPS-42")
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "OPS"\n')
        result = _fake_run(outputs, "INC-PM", [("api.error_rate", "ERROR", "5xx at 4.2%")])
        (outputs / "INC-PM" / "postmortem.json").write_text(json.dumps({"ticket": f"{site.url}/browse/OPS-42"}))
        records = notify.deliver([result], mode="never", ticket="new")
        assert [r["detail"] for r in records] == ["OPS-42: 2 attachment(s)", "OPS-42: comment added"]
        assert site.issues == [] and site.problems == []
    finally:
        site.close()


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("", "--ticket new needs [jira] project"),
        ('[jira]\nissue_type = "Task"\n', "project = None is not a Jira project key"),
        ('[jira]\nproject = "ops-1"\n', "project = 'ops-1' is not a Jira project key"),
        ('[jira]\nproject = "OPS"\npriorities = { SEV1 = "High" }\n', "priorities.SEV1"),
    ],
)
def test_a_bad_or_missing_jira_project_is_bad_input_before_anything_runs(toml, says, tmp_path, monkeypatch, capsys):
    site = Jira(USER, TOKEN, "OPS-999")
    try:
        outputs = _configure(monkeypatch, tmp_path, site, toml)
        run = ["run", "health_check", "--incident", "INC-BAD", "--outputs", str(outputs), "--ticket", "new"]
        assert main(run) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
        assert not outputs.exists() and site.requests == []
    finally:
        site.close()


def test_the_summary_is_the_verdict_on_one_line_within_255_characters():
    notice = Notice("INC-1", ["triage"], "OK", {}, {}, [], [])
    assert jira.summary_for(notice) == "[OK] INC-1: no findings at WARNING or above"
    assert [jira.priority_for(s) for s in ("CRITICAL", "ERROR", "WARNING", "INFO", "OK")] == [
        "Highest",
        "High",
        "Medium",
        "Low",
        "Low",
    ]
    assert jira.priority_for("ERROR", {"ERROR": "P2"}) == "P2"


def test_the_post_mortem_draft_without_a_key_needs_the_incidents_issue(tmp_path, monkeypatch, capsys):
    site = Jira(USER, TOKEN, "OPS-999")
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "OPS"\n')
        _fake_run(outputs, "INC-NONE", [("api.error_rate", "ERROR", "5xx at 4.2%")])
        assert main(["archive", "postmortem", "INC-NONE", "--outputs", str(outputs), "--ticket"]) == 2
        err = capsys.readouterr().err.strip()
        assert "incident 'INC-NONE' has no Jira issue yet: pass --ticket KEY" in err and len(err.splitlines()) == 1
        assert site.requests == [] and not (outputs / "INC-NONE" / DRAFT).exists()
    finally:
        site.close()


def _waiting_on_a_lock(thread: threading.Thread) -> bool:
    try:
        return "lock" in Path(f"/proc/self/task/{thread.native_id}/wchan").read_text()
    except OSError:
        return False


def test_two_runs_of_one_incident_at_once_open_one_issue(tmp_path, monkeypatch):
    site = Jira(USER, TOKEN, "OPS-999")
    site.create_gate = threading.Event()
    try:
        outputs = _configure(monkeypatch, tmp_path, site, '[jira]\nproject = "OPS"\n')
        first, second = (_fake_run(outputs, "INC-RACE", [("api.error_rate", "ERROR", "5xx at 4.2%")]) for _ in "ab")
        records: dict[str, list] = {}

        def deliver(name: str, result: RunResult) -> threading.Thread:
            thread = threading.Thread(
                target=lambda: records.__setitem__(name, notify.deliver([result], mode="never", ticket="new"))
            )
            thread.start()
            return thread

        a = deliver("a", first)
        assert site.create_seen.wait(30)  # the first run is opening the issue (Jira holds its answer)
        b = deliver("b", second)
        creates = lambda: [r for r in site.requests if r["path"] == "/rest/api/3/issue"]  # noqa: E731
        for _ in range(3000):  # until the second run waits for the first (or, unlocked, asks for its own issue)
            if _waiting_on_a_lock(b) or len(creates()) > 1:
                break
            threading.Event().wait(0.01)
        site.create_gate.set()
        a.join(60)
        b.join(60)
        assert len(creates()) == 1 and [i["key"] for i in site.issues] == ["OPS-1"]
        assert records["a"][0]["detail"].startswith("OPS-1: opened in OPS")
        assert [r["detail"] for r in records["b"]] == ["OPS-1: 2 attachment(s)", "OPS-1: comment added"]
        assert site.problems == []
    finally:
        site.create_gate.set()
        site.close()
