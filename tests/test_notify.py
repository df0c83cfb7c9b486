"""Notifications and tickets against real local servers: a Slack webhook, PagerDuty's Events API v2 and Jira's REST
API stand in over HTTP (tests/notify_servers.py checks every request against the documented contract), and a real
SMTP server (aiosmtpd) receives the email. The flow runs `imsnb run health_check` on the session's db-degradation
sandbox, its severity steered with the threshold variables, as a scheduler would (`--notify changes`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from notify_servers import Jira, PagerDuty, Slack, Smtp, adf_text

from imsnb import notify
from imsnb.errors import NotConfigured
from imsnb.findings import Severity
from imsnb.findings.oncall import roster_from
from imsnb.notify import pagerduty
from imsnb.notify.message import Notice
from imsnb.notify.routes import routes_from
from imsnb.runs.execute import RunResult

sys.path.insert(0, str(Path(__file__).parent / "faults"))
from secret_scan import assert_no_secrets  # noqa: E402

WEBHOOK_TOKEN = "WhK9s3cretT0kenForSlack4242"
ROUTING_KEY = "R0ut1ngKeyPagerDuty0123456789abc"
SMTP_PASSWORD = "smtp-Pa55word-for-imsnb"
JIRA_TOKEN = "ATATT3xJiraT0ken-imsnb-77"
SECRETS = [WEBHOOK_TOKEN, ROUTING_KEY, SMTP_PASSWORD, JIRA_TOKEN]
TICKET = "OPS-7"
DELIVERY_ENV = (
    "IMSNB_CONFIG",
    "IMSNB_SLACK_WEBHOOK_URL",
    "IMSNB_PAGERDUTY_ROUTING_KEY",
    "IMSNB_SMTP_PASSWORD",
    "SSL_CERT_FILE",
)
CHECK = "postgres.connections_used"


def imsnb_toml(pd_url: str, smtp_port: int) -> str:
    return f"""
[notify]
min_severity = "WARNING"

[notify.slack]

[notify.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = true
from = "imsnb@example.test"
to = ["ops@example.test"]
user = "imsnb"
to_on_call = true

[notify.pagerduty]
url = "{pd_url}"

[oncall]
handoff = "2026-11-02T09:00:00Z"
primary = ["pat"]
secondary = ["pat"]

[oncall.people.pat]
name = "Pat Placeholder"
email = "pat@example.test"
slack = "U0PATPLACE"

[oncall.contacts]
vp_engineering = "pat"
"""


@pytest.fixture(scope="module")
def servers():
    stand_ins = {
        "slack": Slack(WEBHOOK_TOKEN),
        "pagerduty": PagerDuty(ROUTING_KEY),
        "jira": Jira("bot@example.test", JIRA_TOKEN, TICKET),
        "smtp": Smtp("imsnb", SMTP_PASSWORD),
    }
    yield stand_ins
    for stand_in in stand_ins.values():
        stand_in.close()


@pytest.fixture(scope="module")
def world(servers, tmp_path_factory, degraded):
    """The configuration and environment of a scheduled host: imsnb.toml, destination secrets, Jira."""
    root = tmp_path_factory.mktemp("notify")
    config = root / "imsnb.toml"
    config.write_text(imsnb_toml(servers["pagerduty"].events_url, servers["smtp"].port))
    env = {
        **os.environ,
        "IMSNB_CONFIG": str(config),
        "IMSNB_SLACK_WEBHOOK_URL": servers["slack"].webhook_url,
        "IMSNB_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "IMSNB_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(servers["smtp"].ca_file),  # the stand-in's private CA, for STARTTLS
        "JIRA_URL": servers["jira"].url,
        "JIRA_USER": "bot@example.test",
        "JIRA_API_TOKEN": JIRA_TOKEN,
    }
    return {"root": root, "outputs": root / "outputs", "env": env}


def levels(warning: float, error: float, critical: float) -> dict[str, str]:
    name = "IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED"
    return {name: str(warning), f"{name}_ERROR": str(error), f"{name}_CRITICAL": str(critical)}


# 24 of 30 connections are in use in db-degradation (0.8): these levels make the same value each severity.
WARNING_LEVELS = levels(0.5, 0.97, 0.99)
ERROR_LEVELS = levels(0.5, 0.55, 0.99)
CLEAR_LEVELS = levels(0.99, 0.995, 0.999)


def imsnb(world, *args: str, extra: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imsnb.cli", *args],
        cwd=world["root"],
        env={**world["env"], **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def counts(servers) -> dict[str, int]:
    return {
        "slack": len(servers["slack"].requests),
        "pagerduty": len(servers["pagerduty"].requests),
        "jira": len(servers["jira"].requests),
        "smtp": len(servers["smtp"].messages),
    }


def new_since(servers, before: dict[str, int]) -> dict[str, list]:
    return {
        "slack": servers["slack"].json_bodies()[before["slack"] :],
        "pagerduty": servers["pagerduty"].events()[before["pagerduty"] :],
        "jira": servers["jira"].requests[before["jira"] :],
        "smtp": servers["smtp"].messages[before["smtp"] :],
    }


def run_folder(proc: subprocess.CompletedProcess) -> Path:
    line = next(line for line in proc.stdout.splitlines() if line.startswith("run folder: "))
    return Path(line.removeprefix("run folder: "))


@pytest.fixture(scope="module")
def flow(world, servers):
    """Four scheduled runs of health_check under one incident: WARNING, ERROR (with a ticket), the same ERROR
    again, then cleared (with Jira down). What each step sent, its process and its run folder."""
    steps = {}
    plan = [
        ("warning", WARNING_LEVELS, []),
        ("error", ERROR_LEVELS, ["--ticket", TICKET]),
        ("again", ERROR_LEVELS, []),
        ("cleared", CLEAR_LEVELS, ["--ticket", TICKET]),
    ]
    for name, extra, more in plan:
        if name == "cleared":
            servers["jira"].down()
        before = counts(servers)
        proc = imsnb(
            world,
            "run",
            "health_check",
            "--incident",
            "SCHED-1",
            "--outputs",
            str(world["outputs"]),
            "--notify",
            "changes",
            *more,
            extra=extra,
        )
        servers["jira"].up()
        assert proc.returncode in (0, 1), proc.stderr
        steps[name] = {"sent": new_since(servers, before), "proc": proc, "folder": run_folder(proc)}
    return steps


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_warning_run_notifies_slack_and_email_only(flow, servers):
    step = flow["warning"]
    assert summary_of(step["folder"])["severity"] == "WARNING"
    sent = step["sent"]
    assert len(sent["slack"]) == 1 and len(sent["smtp"]) == 1
    assert sent["pagerduty"] == [] and sent["jira"] == []
    slack = sent["slack"][0]
    assert slack["blocks"][0]["text"]["text"] == "[WARNING] incident SCHED-1: health_check"
    assert "Pat Placeholder (" in slack["text"] and "respond within 15 min" in slack["text"]
    assert "<@U0PATPLACE>" in json.dumps(slack["blocks"])  # the person on call, mentioned
    assert CHECK in slack["text"] and "of 30 connections in use" in slack["text"]
    assert str(step["folder"] / "report.html") in slack["text"]  # where the artifact is
    records = summary_of(step["folder"])["notifications"]
    assert {(r["channel"], r["status"]) for r in records} == {("slack", "sent"), ("email", "sent")}
    assert servers["slack"].problems == []


def test_the_email_has_the_findings_table_and_both_attachments(flow, servers):
    mail = flow["warning"]["sent"]["smtp"][0]
    assert mail["authenticated"] and mail["tls"] and ("imsnb", True) in servers["smtp"].logins
    assert sorted(mail["to"]) == ["ops@example.test", "pat@example.test"]  # the list and the person on call
    msg = servers["smtp"].parsed(servers["smtp"].messages.index(mail))
    assert msg["Subject"] == "[WARNING] incident SCHED-1: health_check"
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "<table" in html and CHECK in html and "WARNING" in html and "Pat Placeholder" in html
    attachments = {part.get_filename(): part.get_content() for part in msg.iter_attachments()}
    assert set(attachments) == {"report.html", "summary.json"}
    folder = flow["warning"]["folder"]
    assert attachments["report.html"] == (folder / "report.html").read_text()
    assert json.loads(attachments["summary.json"])["findings"] == summary_of(folder)["findings"]


def test_an_error_run_also_triggers_pagerduty_and_reaches_the_ticket(flow, servers, degraded):
    step = flow["error"]
    summary = summary_of(step["folder"])
    assert summary["severity"] == "ERROR"
    assert summary["escalation"]["on_call_name"] == "Pat Placeholder"
    sent = step["sent"]
    assert len(sent["slack"]) == 1 and len(sent["smtp"]) == 1
    assert "escalated WARNING -&gt; ERROR" in sent["slack"][0]["text"]  # mrkdwn-escaped, shown as ->
    [event] = sent["pagerduty"]
    target = f"{degraded.env()['DB_HOST']}:{degraded.env()['DB_PORT']}/{degraded.env()['DB_NAME']}"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == f"imsnb/{target}/{CHECK}"
    assert event["payload"]["severity"] == "error" and event["payload"]["source"] == target
    assert event["payload"]["custom_details"]["findings"][0]["check"] == CHECK
    assert event["payload"]["custom_details"]["on_call"].startswith("Pat Placeholder")
    assert event["links"][0]["href"] == (step["folder"] / "report.html").resolve().as_uri()
    assert servers["pagerduty"].problems == []
    # the ticket: both files attached (field `file`), the findings table as an ADF comment, the link in index.html
    jira = servers["jira"]
    assert jira.problems == []
    attached = {name: content for field, name, content in jira.attachments if field == "file"}
    assert attached["report.html"] == (step["folder"] / "report.html").read_bytes()
    assert json.loads(attached["summary.json"])["severity"] == "ERROR"
    comment = jira.comments[-1]
    table = next(node for node in comment["content"] if node["type"] == "table")
    assert CHECK in adf_text(table) and "ERROR" in adf_text(table)
    index = (step["folder"].parent / "index.html").read_text()
    assert f'href="{jira.url}/browse/{TICKET}">{TICKET}</a>' in index
    channels = {(r["channel"], r["status"]) for r in summary["notifications"]}
    assert channels == {("slack", "sent"), ("email", "sent"), ("pagerduty", "sent"), ("jira", "sent")}


def test_the_same_error_on_the_next_run_sends_nothing_new(flow):
    step = flow["again"]
    assert summary_of(step["folder"])["severity"] == "ERROR"
    assert step["sent"] == {"slack": [], "pagerduty": [], "jira": [], "smtp": []}
    [record] = summary_of(step["folder"])["notifications"]
    assert record["status"] == "skipped" and record["detail"] == "no change since the last notification"


def test_a_cleared_check_resolves_pagerduty_and_a_failed_ticket_is_one_line(flow, servers):
    step = flow["cleared"]
    assert Severity.parse(summary_of(step["folder"])["severity"]) < Severity.WARNING
    [event] = step["sent"]["pagerduty"]
    assert event == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": flow["error"]["sent"]["pagerduty"][0]["dedup_key"],
    }
    assert len(step["sent"]["slack"]) == 1 and step["sent"]["slack"][0]["text"].startswith("[RESOLVED]")
    assert len(step["sent"]["smtp"]) == 1
    # Jira answered 503: the run's exit status is its own, one line on stderr, a record in summary.json
    proc = step["proc"]
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("imsnb: warning: jira")]
    assert warnings and "HTTP 503" in warnings[0]
    failed = [r for r in summary_of(step["folder"])["notifications"] if r["status"] == "failed"]
    assert failed and {r["channel"] for r in failed} == {"jira"} and "HTTP 503" in failed[0]["error"]
    state = json.loads((step["folder"].parent.parent / ".notify" / "state.json").read_text())
    assert state["checks"] == {}


def test_one_channel_down_and_the_others_still_deliver(flow, world, servers, monkeypatch, tmp_path, capsys):
    for key in DELIVERY_ENV:
        monkeypatch.setenv(key, world["env"][key])
    source = flow["error"]["folder"]
    folder = tmp_path / "outputs" / "INC-DOWN" / source.name
    shutil.copytree(source, folder)
    summary = summary_of(folder)
    summary.pop("notifications")
    (folder / "summary.json").write_text(json.dumps(summary))
    before = counts(servers)
    servers["slack"].down()
    try:
        records = notify.deliver([RunResult(folder, summary, 1)], mode="always")
    finally:
        servers["slack"].up()
    sent = new_since(servers, before)
    assert len(sent["smtp"]) == 1 and [e["event_action"] for e in sent["pagerduty"]] == ["trigger"]
    by_channel = {r["channel"]: r for r in records}
    assert by_channel["slack"]["status"] == "failed" and "HTTP 503" in by_channel["slack"]["error"]
    assert WEBHOOK_TOKEN not in by_channel["slack"]["error"]
    assert by_channel["email"]["status"] == "sent" and by_channel["pagerduty"]["status"] == "sent"
    written = summary_of(folder)["notifications"]
    assert [r for r in written if r["channel"] == "slack"][0]["error"] == by_channel["slack"]["error"]
    assert "imsnb: warning: slack notification failed: Slack webhook answered HTTP 503" in capsys.readouterr().err
    # the next scheduled run retries the channel that failed, though nothing changed
    before = counts(servers)
    records = notify.deliver([RunResult(folder, summary, 1)], mode="changes")
    assert [r["channel"] for r in records] == ["slack"] and records[0]["status"] == "sent"
    assert new_since(servers, before)["smtp"] == []


def test_no_secret_in_any_message_body_or_artifact(flow, world, servers):
    bodies = [r["body"] for r in servers["slack"].requests + servers["jira"].requests]
    bodies += [
        json.dumps({k: v for k, v in e.items() if k != "routing_key"}).encode() for e in servers["pagerduty"].events()
    ]
    bodies += [m["raw"] for m in servers["smtp"].messages]
    bodies += [(step["proc"].stdout + step["proc"].stderr).encode() for step in flow.values()]
    assert len(bodies) >= 12
    scanned = assert_no_secrets([world["outputs"], *bodies], SECRETS)
    assert scanned > 100_000  # the reports themselves were scanned


# ---------------------------------------------------------------- without a kernel


def test_rotation_names_the_person_by_week_and_hours():
    roster = roster_from(
        {
            "handoff": "2026-11-02T09:00:00Z",  # a Monday
            "primary": ["ana", "ben"],
            "secondary": ["cy", "di"],
            "people": {p: {"name": p.title(), "email": f"{p}@example.test"} for p in ("ana", "ben", "cy", "di")},
            "contacts": {"database_admin": "cy", "vp_engineering": "di"},
        }
    )

    def who(text: str) -> tuple[str, str]:
        role, person = roster.on_call(datetime.fromisoformat(text).replace(tzinfo=UTC))
        return role, person.id

    assert who("2026-11-02T10:00") == ("primary", "ana")
    assert who("2026-11-06T16:59") == ("primary", "ana")  # Friday, last primary minute
    assert who("2026-11-06T17:00") == ("secondary", "cy")
    assert who("2026-11-08T12:00") == ("secondary", "cy")  # Sunday
    assert who("2026-11-09T08:59") == ("secondary", "cy")  # before the weekly handoff
    assert who("2026-11-09T09:00") == ("primary", "ben")
    assert who("2026-11-10T20:00") == ("secondary", "di")
    assert who("2026-11-16T09:30") == ("primary", "ana")  # two weeks on: back to the first
    assert who("2026-10-28T10:00") == ("primary", "ben")  # the week before the handoff date
    assert roster.contact("vp_engineering").name == "Di"


@pytest.mark.parametrize(
    "section, needle",
    [
        ({"primary": ["nobody"], "people": {"ana": {"name": "Ana"}}}, "'nobody', who is not in"),
        ({"handoff": "every monday"}, "is not an ISO 8601 time"),
        ({"contacts": {"cto": "ana"}}, "unknown role"),
        ({"people": {"ana": {"pager": "x"}}}, "unknown key 'pager'"),
    ],
)
def test_a_bad_roster_is_named(section, needle):
    with pytest.raises(NotConfigured, match=needle):
        roster_from(section)


def test_routes_follow_the_escalation_matrix_and_refuse_secrets():
    routes = routes_from({"slack": {}, "email": {"host": "h", "from": "f@x", "to": ["t@x"]}, "pagerduty": {}})
    assert routes.destinations("INFO") == ["email"]
    assert routes.destinations("WARNING") == ["slack", "email"]
    assert routes.destinations("ERROR") == ["slack", "email", "pagerduty"]
    assert routes.destinations("CRITICAL") == ["slack", "email", "pagerduty"]
    assert routes_from({"slack": {}}).destinations("ERROR") == ["slack"]
    only_pages = routes_from({"slack": {}, "pagerduty": {}, "routes": {"Slack": [], "SMS": []}})
    assert only_pages.destinations("WARNING") == [] and only_pages.destinations("ERROR") == ["pagerduty"]
    for bad, needle in (
        ({"slack": {"webhook_url": "https://hooks.slack.com/services/T/B/x"}}, "looks like a secret"),
        ({"pagerduty": {"routing_key": "abc"}}, "looks like a secret"),
        ({"email": {"host": "h", "from": "f", "to": ["t"], "password": "pw"}}, "looks like a secret"),
        ({"slack": {"url": "https://hooks.slack.com/services/T/B/x"}}, "holds a secret"),
        ({}, "names no destination"),
        ({"slack": {}, "routes": {"Pager": ["slack"]}}, "not a channel"),
    ):
        with pytest.raises(NotConfigured, match=needle):
            routes_from(bad)


def test_pagerduty_limits_hold_for_long_targets_and_messages(servers):
    finding = {
        "check": "postgres." + "c" * 300,
        "target": "db-" + "x" * 300,
        "severity": "CRITICAL",
        "message": "m" * 5000,
        "notebook": "db_performance",
        "component": "database",
    }
    notice = Notice(
        "INC-LONG",
        ["db_performance"],
        "CRITICAL",
        {"response_time": "1 min", "notification": "Slack", "escalation": "Page VP"},
        {"role": "primary", "name": "primary"},
        [finding],
        [{"notebook": "db_performance", "report": "s3://bucket/p/INC-LONG/x/report.html", "summary": "", "folder": ""}],
    )
    event = pagerduty.trigger_event(finding, notice, ROUTING_KEY, at="2026-11-29T22:00:00Z")
    assert len(event["payload"]["summary"]) == 1024 and len(event["dedup_key"]) == 255
    assert event["dedup_key"] != pagerduty.dedup_key("db-" + "x" * 300, "postgres." + "c" * 299)
    assert event["links"][0]["href"].startswith("https://s3.console.aws.amazon.com/s3/object/bucket?prefix=p/INC-LONG")
    before = len(servers["pagerduty"].problems)
    assert pagerduty.send(event, servers["pagerduty"].events_url).startswith("trigger imsnb/db-")
    assert servers["pagerduty"].problems[before:] == []


@pytest.mark.parametrize(
    "args, config, needle",
    [
        (["--notify", "sometimes"], None, "invalid choice: 'sometimes'"),
        (["--notify", "changes"], "", "--notify needs a [notify] table"),
        (["--notify", "always"], '[notify]\n[notify.slack]\nwebhook = "x"\n', "looks like a secret"),
        (["--ticket", "not a key"], None, "is not a Jira issue key"),
        (["--ticket", "OPS-1"], None, "--ticket needs JIRA_URL, JIRA_API_TOKEN in the environment"),
        (["--notify", "changes"], '[notify.slack]\n[oncall]\nprimary = "x"\n[oncall.people.y]\n', "who is not in"),
    ],
)
@pytest.mark.parametrize("command", [["run", "health_check"], ["suite", "health_check"], ["triage"]])
def test_bad_delivery_input_is_one_line_and_writes_nothing(tmp_path, command, args, config, needle):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIRA_", "IMSNB_CONFIG"))}
    if config is not None:
        (tmp_path / "imsnb.toml").write_text(config)
        env["IMSNB_CONFIG"] = str(tmp_path / "imsnb.toml")
    proc = subprocess.run(
        [sys.executable, "-m", "imsnb.cli", *command, "--outputs", str(tmp_path / "out"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_report_and_triage_name_the_person_and_a_bad_roster_never_breaks_them(tmp_path, monkeypatch):
    from imsnb import report, triage

    config = tmp_path / "imsnb.toml"
    config.write_text('[oncall]\nprimary = ["lee"]\nsecondary = ["lee"]\n[oncall.people.lee]\nname = "Lee Sample"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    assert report.bundle([])["escalation"]["on_call_name"] == "Lee Sample"
    assert triage.escalation_summary("ERROR")["on_call_name"] == "Lee Sample"
    config.write_text('[oncall]\nprimary = ["nobody"]\n[oncall.people.lee]\nname = "Lee Sample"\n')
    esc = report.bundle([])["escalation"]
    assert esc["on_call_name"] == esc["on_call"] in ("primary", "secondary")  # the role, never a crash


def test_a_suite_is_one_message_with_every_report_attached(flow, world, servers, monkeypatch, tmp_path):
    for key in DELIVERY_ENV:
        monkeypatch.setenv(key, world["env"][key])
    results = []
    for step, notebook in (("warning", "health_check"), ("error", "db_performance")):
        folder = tmp_path / "outputs" / "INC-SUITE" / f"{flow[step]['folder'].name}-{notebook}"
        shutil.copytree(flow[step]["folder"], folder)
        summary = {**summary_of(folder), "notebook": notebook, "incident_id": "INC-SUITE"}
        summary.pop("notifications")
        (folder / "summary.json").write_text(json.dumps(summary))
        results.append(RunResult(folder, summary, 0))
    before = counts(servers)
    records = notify.deliver(results, mode="changes")
    sent = new_since(servers, before)
    assert len(sent["slack"]) == 1 and len(sent["smtp"]) == 1  # one message for the suite, not one per run
    assert sent["slack"][0]["blocks"][0]["text"]["text"] == "[ERROR] incident INC-SUITE: health_check, db_performance"
    assert len(sent["pagerduty"]) == 1  # one check on one target: one alert
    msg = servers["smtp"].parsed(servers["smtp"].messages.index(sent["smtp"][0]))
    names = sorted(part.get_filename() for part in msg.iter_attachments())
    assert names == sorted(f"{r.folder.name}-{n}" for r in results for n in ("report.html", "summary.json"))
    assert all(summary_of(r.folder)["notifications"] == records for r in results)


def _fake_run(outputs: Path, name: str, findings: list[tuple[str, str]], status: str = "ok") -> RunResult:
    folder = outputs / "SCHED-2" / f"20261129T{len(list(outputs.rglob('summary.json'))):06d}Z-{name}"
    folder.mkdir(parents=True)
    summary = {
        "notebook": name,
        "incident_id": "SCHED-2",
        "status": status,
        "parameters": {"environment": "prod"},
        "severity": max((s for _, s in findings), key=Severity.parse, default="OK"),
        "findings": [{"check": c, "component": "cache", "severity": s, "message": f"{c} {s}"} for c, s in findings],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return RunResult(folder, summary, 0)


def test_pagerduty_down_is_retried_on_the_next_run_and_clears_by_absence(servers, monkeypatch, tmp_path, capsys):
    config = tmp_path / "imsnb.toml"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config.write_text(f'[notify.pagerduty]\nurl = "http://127.0.0.1:{closed}/v2/enqueue"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    monkeypatch.setenv("IMSNB_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    outputs = tmp_path / "outputs"
    both = [("cache.hit_rate", "ERROR"), ("cache.evictions", "CRITICAL")]

    records = notify.deliver([_fake_run(outputs, "redis_cache", both)], mode="changes")
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert "unreachable" in records[0]["error"] and records[1]["error"].startswith("not sent: ")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("(and 1 more) (the run is complete)")

    monkeypatch.setenv("IMSNB_PAGERDUTY_URL", servers["pagerduty"].events_url)
    before = counts(servers)
    notify.deliver([_fake_run(outputs, "redis_cache", both)], mode="changes")  # nothing changed, but never paged
    events = new_since(servers, before)["pagerduty"]
    keys = ["imsnb/prod/cache/cache.evictions", "imsnb/prod/cache/cache.hit_rate"]
    assert sorted(e["dedup_key"] for e in events) == keys
    assert {e["payload"]["severity"] for e in events} == {"error", "critical"}

    before = counts(servers)
    [record] = notify.deliver([_fake_run(outputs, "redis_cache", both)], mode="changes")
    assert record["status"] == "skipped" and new_since(servers, before)["pagerduty"] == []

    before = counts(servers)  # a failed run clears nothing it did not report
    notify.deliver([_fake_run(outputs, "redis_cache", [("cache.hit_rate", "OK")], status="failed")], mode="changes")
    events = new_since(servers, before)["pagerduty"]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [("resolve", "imsnb/prod/cache/cache.hit_rate")]

    before = counts(servers)  # the notebook completes without the other check: cleared too
    notify.deliver([_fake_run(outputs, "redis_cache", [("cache.memory_used", "OK")])], mode="changes")
    events = new_since(servers, before)["pagerduty"]
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [("resolve", "imsnb/prod/cache/cache.evictions")]
    assert json.loads((outputs / ".notify" / "state.json").read_text())["checks"] == {}
    assert servers["pagerduty"].problems == []


def test_a_scheduled_run_notifies_on_changes_only(world, servers, tmp_path):
    """`imsnb schedule run` (what cron and Airflow run) notifies by default, but only when the state changes."""
    config = tmp_path / "imsnb.toml"
    config.write_text(
        imsnb_toml(servers["pagerduty"].events_url, servers["smtp"].port)
        + '\n[schedules.hc]\nnotebook = "health_check"\ncron = "0 */4 * * *"\n'
    )
    env = {**world["env"], "IMSNB_CONFIG": str(config)}
    sent = []
    for _ in range(2):
        before = counts(servers)
        proc = subprocess.run(
            [sys.executable, "-m", "imsnb.cli", "schedule", "run", "hc", "--outputs", str(tmp_path / "outputs")],
            cwd=tmp_path,
            env={**env, **WARNING_LEVELS},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        sent.append(new_since(servers, before))
    assert len(sent[0]["slack"]) == 1 and len(sent[0]["smtp"]) == 1, "the first scheduled WARNING is news"
    assert sent[1] == {"slack": [], "pagerduty": [], "jira": [], "smtp": []}, "the same WARNING again is not"
    assert servers["slack"].problems == []
