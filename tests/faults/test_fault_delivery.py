"""Delivery that holds against the services as they really answer: success only on the service's own word, 429 and
Retry-After, a redirect, one refused event among several, the size limits. The stand-ins in tests/notify_servers.py
answer as Slack, PagerDuty and Jira do (their limits are in STACK.md); no kernel runs here: the runs are summaries
written as a notebook would."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from notify_servers import ForwardProxy, Jira, PagerDuty, Slack, Smtp, TricklingSmtp, adf_text

from imsnb import notify
from imsnb.errors import BadParameter
from imsnb.findings import Severity
from imsnb.notify import jira, mail, pagerduty, slack
from imsnb.notify.http import DeliveryFailed
from imsnb.notify.message import Notice
from imsnb.runs.execute import RunResult

WEBHOOK_TOKEN = "WhK9s3cretT0kenForSlackFaults42"
ROUTING_KEY = "FaultRoutingKeyPagerDuty01234567"
JIRA_TOKEN = "ATATT3xJiraT0ken-faults-31"
SMTP_PASSWORD = "smtp-Pa55word-faults-19"
TICKET = "OPS-9"


@pytest.fixture(scope="module")
def servers():
    stand_ins = {
        "slack": Slack(WEBHOOK_TOKEN),
        "pagerduty": PagerDuty(ROUTING_KEY),
        "jira": Jira("bot@x.test", JIRA_TOKEN, TICKET),
        "smtp": Smtp("imsnb", SMTP_PASSWORD),
    }
    yield stand_ins
    for stand_in in stand_ins.values():
        stand_in.close()


@pytest.fixture
def channels(servers, tmp_path, monkeypatch):
    """imsnb.toml routing to Slack and PagerDuty (the stand-ins), their secrets and Jira's in the environment."""
    for stand_in in (servers["slack"], servers["pagerduty"], servers["jira"]):
        stand_in.scripted.clear()
    servers["pagerduty"].rejected.clear()
    config = tmp_path / "imsnb.toml"
    config.write_text(f'[notify.slack]\n[notify.pagerduty]\nurl = "{servers["pagerduty"].events_url}"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    monkeypatch.setenv("IMSNB_SLACK_WEBHOOK_URL", servers["slack"].webhook_url)
    monkeypatch.setenv("IMSNB_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("JIRA_URL", servers["jira"].url)
    monkeypatch.setenv("JIRA_USER", "bot@x.test")
    monkeypatch.setenv("JIRA_API_TOKEN", JIRA_TOKEN)
    monkeypatch.setenv("IMSNB_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(servers["smtp"].ca_file))
    monkeypatch.delenv("IMSNB_PAGERDUTY_URL", raising=False)
    return servers


def email_table(port: int, **extra: object) -> str:
    lines = ["[notify.email]", 'host = "127.0.0.1"', f"port = {port}", 'from = "imsnb@ops.example.test"']
    lines += ['to = ["oncall@ops.example.test"]', *(f"{k} = {json.dumps(v)}" for k, v in extra.items())]
    return "\n".join(lines) + "\n"


def configure(tmp_path: Path, servers, *, email: str = "") -> None:
    """Slack, PagerDuty (the stand-ins) and the given [notify.email] table, as IMSNB_CONFIG."""
    config = tmp_path / "imsnb.toml"
    config.write_text(f'[notify.slack]\n[notify.pagerduty]\nurl = "{servers["pagerduty"].events_url}"\n{email}')
    os.environ["IMSNB_CONFIG"] = str(config)  # restored by monkeypatch: `channels` set it


def fake_run(
    outputs: Path,
    findings: list[tuple[str, str]],
    *,
    message: str = "",
    name: str = "redis_cache",
    component: str = "cache",
    environment: str = "prod",
):
    """A completed run's folder and summary, as a notebook leaves them (findings: (check, severity))."""
    folder = outputs / "INC-F" / f"20261129T{len(list(outputs.rglob('summary.json'))):06d}Z-{name}"
    folder.mkdir(parents=True)
    summary = {
        "notebook": name,
        "incident_id": "INC-F",
        "status": "ok",
        "parameters": {"environment": environment},
        "severity": max((s for _, s in findings), key=Severity.parse, default="OK"),
        "findings": [
            {"check": c, "component": component, "severity": s, "message": message or f"{c} is {s}"}
            for c, s in findings
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.html").write_text("<html><body>report</body></html>")
    return RunResult(folder, summary, 0)


def notice_of(findings: list[dict]) -> Notice:
    return Notice(
        "INC-F",
        ["redis_cache"],
        "CRITICAL",
        {"response_time": "1 min", "notification": "Slack", "escalation": "Page VP"},
        {"role": "primary", "name": "primary"},
        findings,
        [{"notebook": "redis_cache", "report": "/tmp/INC-F/x/report.html", "summary": "", "folder": ""}],
    )


def by_channel(records: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for record in records:
        found.setdefault(record["channel"], []).append(record)
    return found


# ---------------------------------------------------------------- 1. success means the service said so


@pytest.mark.parametrize("status", [301, 302])
def test_a_redirect_from_the_slack_webhook_is_a_failure_naming_where_it_pointed(channels, tmp_path, status, capsys):
    channels["slack"].answer_next(status, headers={"Location": "https://moved.example/elsewhere"})
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "WARNING")])
    records = notify.deliver([run], mode="always")
    [record] = by_channel(records)["slack"]
    assert record["status"] == "failed", record
    assert f"HTTP {status} redirecting to https://moved.example/elsewhere" in record["error"]
    assert WEBHOOK_TOKEN not in record["error"]
    assert "slack notification failed" in capsys.readouterr().err


@pytest.mark.parametrize("status, body", [(200, b""), (200, b"invalid_token"), (204, b"ok"), (202, b"ok")])
def test_slack_is_sent_only_on_200_ok(channels, status, body):
    channels["slack"].answer_next(status, body)
    with pytest.raises(DeliveryFailed, match=f"HTTP {status}, not 200 ok"):
        slack.send({"text": "x", "blocks": [{"type": "divider"}]}, channels["slack"].webhook_url)


def test_pagerduty_is_sent_only_on_202_success(channels):
    event = pagerduty.resolve_event("prod/cache", "cache.hit_rate", ROUTING_KEY)
    channels["pagerduty"].answer_next(200, b'{"status":"success"}')
    with pytest.raises(DeliveryFailed, match="HTTP 200, not 202 success"):
        pagerduty.send(event, channels["pagerduty"].events_url)
    channels["pagerduty"].answer_next(202, b'{"status":"queued?"}')
    with pytest.raises(DeliveryFailed, match="HTTP 202, not 202 success"):
        pagerduty.send(event, channels["pagerduty"].events_url)
    assert pagerduty.send(event, channels["pagerduty"].events_url) == "resolve imsnb/prod/cache/cache.hit_rate"


def test_jira_attachments_and_comments_are_sent_only_on_their_own_success(channels, tmp_path):
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")])
    files = [("summary.json", run.folder / "summary.json")]
    cloud = jira.Site(channels["jira"].url, "cloud")
    channels["jira"].answer_next(301, headers={"Location": "https://jira.example/login"})
    with pytest.raises(DeliveryFailed, match="HTTP 301 redirecting to https://jira.example/login"):
        jira.attach(cloud, TICKET, files)
    channels["jira"].answer_next(200, b'{"id": "1"}')  # not the list of attachments
    with pytest.raises(DeliveryFailed, match="without the list of attachments"):
        jira.attach(cloud, TICKET, files)
    channels["jira"].answer_next(200, b'{"id": "10000"}')
    with pytest.raises(DeliveryFailed, match="HTTP 200, not 201 Created"):
        jira.comment(cloud, TICKET, jira.comment_document(notice_of([])))
    assert jira.attach(cloud, TICKET, files) == "1 attachment(s)"


def test_jira_401_and_an_unknown_issue_are_one_line_each(channels, tmp_path, monkeypatch):
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")])
    records = notify.deliver([run], mode="never", ticket="OPS-404")
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert 'HTTP 404: {"errorMessages":["Issue does not exist' in records[0]["error"]
    monkeypatch.setenv("JIRA_API_TOKEN", "wrong-token-for-jira")
    records = notify.deliver([run], mode="never", ticket=TICKET)
    assert [r["status"] for r in records] == ["failed", "failed"] and "HTTP 401" in records[1]["error"]
    assert "wrong-token-for-jira" not in json.dumps(records)


# ---------------------------------------------------------------- 2. 429, Retry-After, one refused event


def test_429_with_a_retry_after_within_the_deadline_is_sent_after_it(channels):
    channels["slack"].answer_next(429, b"rate_limited", {"Retry-After": "1"})
    before = len(channels["slack"].requests)
    assert slack.send({"text": "x", "blocks": [{"type": "divider"}]}, channels["slack"].webhook_url) == "1 blocks"
    assert [r.get("scripted") for r in channels["slack"].requests[before:]] == [429, None]


def test_429_with_a_retry_after_beyond_the_deadline_fails_at_once_for_the_next_run(channels, tmp_path):
    channels["pagerduty"].answer_next(429, b'{"status":"throttle"}', {"Retry-After": "3600"}, times=5)
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR"), ("cache.evictions", "CRITICAL")])
    before = len(channels["pagerduty"].requests)
    records = by_channel(notify.deliver([run], mode="changes"))["pagerduty"]
    assert len(channels["pagerduty"].requests) == before + 1, "the batch stops at a 429: no wait per event"
    assert "rate limited (HTTP 429, Retry-After 3600): not within the 10 s deadline" in records[0]["error"]
    assert records[1]["error"].startswith("not sent: PagerDuty events API rate limited")
    channels["pagerduty"].scripted.clear()
    again = by_channel(notify.deliver([run], mode="changes"))["pagerduty"]  # nothing changed, but never paged
    assert [r["status"] for r in again] == ["sent", "sent"]


def test_one_event_refused_with_400_does_not_stop_the_others_or_the_resolves(channels, tmp_path):
    outputs = tmp_path / "out"
    notify.deliver([fake_run(outputs, [("cache.stale", "ERROR")])], mode="changes")  # paged: resolved below
    channels["pagerduty"].reject("imsnb/prod/cache/cache.a")
    before = len(channels["pagerduty"].requests)
    run = fake_run(
        outputs, [("cache.a", "ERROR"), ("cache.b", "CRITICAL"), ("cache.c", "ERROR"), ("cache.stale", "OK")]
    )
    records = by_channel(notify.deliver([run], mode="changes"))["pagerduty"]
    events = channels["pagerduty"].events()[before:]
    assert sorted((e["event_action"], e["dedup_key"].rsplit("/", 1)[1]) for e in events) == [
        ("resolve", "cache.stale"),
        ("trigger", "cache.a"),
        ("trigger", "cache.b"),
        ("trigger", "cache.c"),
    ]
    status = {r["detail"].rsplit("/", 1)[1]: r["status"] for r in records}
    assert status == {"cache.a": "failed", "cache.b": "sent", "cache.c": "sent", "cache.stale": "sent"}
    state = json.loads((outputs / ".notify" / "state.json").read_text())["checks"]
    assert not state["prod/cache|cache.a"]["paged"] and state["prod/cache|cache.b"]["paged"]


# ---------------------------------------------------------------- 3. sizes


def long_findings(count: int = 120, length: int = 5000) -> list[dict]:
    return [
        {
            "check": f"cache.check_{i:03d}",
            "target": "prod/cache",
            "severity": "CRITICAL" if i % 2 else "ERROR",
            "message": f"finding {i} " + "m" * length,
            "notebook": "redis_cache",
            "component": "cache",
        }
        for i in range(count)
    ]


def test_a_pagerduty_event_with_120_long_findings_stays_under_512_kb(channels):
    findings = long_findings()
    event = pagerduty.trigger_event(findings[7], notice_of(findings), ROUTING_KEY)
    assert len(json.dumps(event).encode()) < 512 * 1024
    details = event["payload"]["custom_details"]
    assert [f["check"] for f in details["findings"]] == ["cache.check_007"]
    assert details["findings_total"] == 120 and details["findings_by_severity"] == {"CRITICAL": 60, "ERROR": 60}
    assert pagerduty.send(event, channels["pagerduty"].events_url).startswith("trigger ")
    small = pagerduty.trigger_event(findings[0], notice_of(findings[:3]), ROUTING_KEY)
    assert len(small["payload"]["custom_details"]["findings"]) == 3, "a table that fits is sent whole"


def test_a_jira_comment_with_120_long_findings_is_trimmed_and_says_how_many_more(channels):
    document = jira.comment_document(notice_of(long_findings()))
    assert len(json.dumps(document, ensure_ascii=False)) <= 32_767
    assert jira.comment(jira.Site(channels["jira"].url, "cloud"), TICKET, document) == "comment added"
    sent = channels["jira"].comments[-1]
    table = next(node for node in sent["content"] if node["type"] == "table")
    shown = len(table["content"]) - 1
    assert 3 <= shown < 120
    assert f"… and {120 - shown} more in the attached report" in adf_text(sent)


# ---------------------------------------------------------------- 6. nothing leaks


def test_targets_and_every_payload_carry_no_user_info(channels, tmp_path, monkeypatch):
    monkeypatch.setenv("IMSNB_API_URL", "http://opsuser:pw-Secret-77@127.0.0.1:8099")
    configure(tmp_path, channels, email=email_table(channels["smtp"].port, starttls=True, user="imsnb"))
    before = {name: len(server.requests) for name, server in channels.items() if name != "smtp"}
    mails = len(channels["smtp"].messages)
    outputs = tmp_path / "out"
    run = fake_run(outputs, [("api.health", "ERROR")], component="api", environment="default", name="health_check")
    records = notify.deliver([run], mode="changes")
    assert {r["channel"]: r["status"] for r in records} == {"slack": "sent", "email": "sent", "pagerduty": "sent"}
    [message] = channels["smtp"].messages[mails:]
    parts = channels["smtp"].parsed(channels["smtp"].messages.index(message)).walk()
    decoded = [p.get_payload(decode=True) or b"" for p in parts if not p.is_multipart()]
    sent = [message["raw"], *decoded, (outputs / ".notify" / "state.json").read_bytes()]
    sent += [(run.folder / "summary.json").read_bytes()]
    sent += [r["body"] for name, n in before.items() for r in channels[name].requests[n:]]
    assert sum(b"api.health on 127.0.0.1:8099" in part for part in decoded) == 2  # the text and the HTML
    for body in sent:
        assert b"opsuser" not in body and b"pw-Secret-77" not in body, body[:300]
    [event] = [json.loads(r["body"]) for r in channels["pagerduty"].requests[before["pagerduty"] :]]
    assert event["dedup_key"] == "imsnb/127.0.0.1:8099/api.health"


# ---------------------------------------------------------------- 7. secrets only over TLS


@pytest.mark.parametrize(
    "variable, value, needle",
    [
        (
            "IMSNB_PAGERDUTY_URL",
            "http://pagerduty.example.invalid/v2/enqueue",
            "plain http://pagerduty.example.invalid",
        ),
        (
            "IMSNB_SLACK_WEBHOOK_URL",
            "http://hooks.example.invalid/services/T/B/x",
            "plain http://hooks.example.invalid",
        ),
    ],
)
def test_a_secret_goes_over_plain_http_to_loopback_only(channels, tmp_path, monkeypatch, variable, value, needle):
    monkeypatch.setenv(variable, value)
    with pytest.raises(BadParameter, match=needle):
        notify.check_ready("changes")
    records = notify.deliver([fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")])], mode="always")
    refused = [r for r in records if r["status"] == "failed"]
    assert refused and all(needle in r["error"] and "not sent" in r["error"] for r in refused), records


def test_a_toml_url_or_jira_site_in_plain_http_is_bad_input(channels, tmp_path, monkeypatch):
    config = tmp_path / "imsnb.toml"
    config.write_text('[notify.pagerduty]\nurl = "http://10.1.2.3/v2/enqueue"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    proc = subprocess.run(
        [sys.executable, "-m", "imsnb.cli", "run", "health_check", "--notify", "changes", "--outputs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "[notify.pagerduty] url is plain http://10.1.2.3" in proc.stderr
    monkeypatch.setenv("JIRA_URL", "http://jira.example.invalid")
    with pytest.raises(BadParameter, match="JIRA_URL is plain http://jira.example.invalid"):
        notify.check_ready("never", ticket=TICKET)
    config.write_text('[notify.pagerduty]\nurl = "http://[::1]:9/v2/enqueue"\n')  # loopback: allowed
    notify.check_ready("changes")


def test_smtp_auth_without_tls_is_bad_input_and_never_sent(channels, tmp_path):
    plain = Smtp("imsnb", SMTP_PASSWORD, tls=None)
    try:
        configure(tmp_path, channels, email=email_table(plain.port, user="imsnb"))
        with pytest.raises(BadParameter, match="without TLS: the password would cross the network in clear"):
            notify.check_ready("changes")
        configure(tmp_path, channels, email=email_table(plain.port))  # no user: the password alone still logs in
        with pytest.raises(BadParameter, match="without TLS"):
            notify.check_ready("changes")
        records = notify.deliver([fake_run(tmp_path / "out", [("cache.hit_rate", "WARNING")])], mode="always")
        [email] = [r for r in records if r["channel"] == "email"]
        assert email["status"] == "failed" and "without TLS" in email["error"]
        assert plain.sessions == 0 and plain.logins == [], "nothing reached the server"
    finally:
        plain.close()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # implicit TLS: it is
def test_implicit_tls_defaults_to_port_465_and_mails_say_they_are_automatic(channels, tmp_path):
    assert mail.port_of({"ssl": True}) == 465 and mail.port_of({"starttls": True}) == 25
    with pytest.raises(BadParameter, match="sets both ssl and starttls"):
        configure(tmp_path, channels, email=email_table(1, ssl=True, starttls=True))
        notify.check_ready("changes")
    implicit = Smtp("imsnb", SMTP_PASSWORD, tls="ssl")
    try:
        configure(tmp_path, channels, email=email_table(implicit.port, ssl=True, user="imsnb"))
        os.environ["SSL_CERT_FILE"] = str(implicit.ca_file)
        records = notify.deliver([fake_run(tmp_path / "out", [("cache.hit_rate", "WARNING")])], mode="always")
        assert [r["status"] for r in records if r["channel"] == "email"] == ["sent"], records
        [message] = implicit.messages
        assert message["authenticated"] and message["tls"]
        parsed = implicit.parsed()
        assert parsed["Auto-Submitted"] == "auto-generated"
        assert re.fullmatch(r"<[0-9.]+imsnb@ops\.example\.test>", parsed["Message-ID"]), parsed["Message-ID"]
    finally:
        implicit.close()


# ---------------------------------------------------------------- 8. Slack markup from data is text


HOSTILE = "<!channel> wake up <https://evil.example|Acknowledge here> &amp; <@U0ATTACKER>"


def test_slack_text_and_links_from_data_are_escaped(channels, tmp_path):
    before = len(channels["slack"].requests)
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "WARNING")], message=HOSTILE)
    notify.deliver([run], mode="always", archive="s3://bucket/pre|fix>x<!here>")
    [payload] = channels["slack"].json_bodies()[before:]
    texts = [payload["text"]]
    for block in payload["blocks"]:
        texts += [block.get("text", {}).get("text", "")] + [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", [])]
    joined = "\n".join(texts)
    assert "&lt;!channel&gt; wake up &lt;https://evil.example|Acknowledge here&gt; &amp;amp;" in payload["text"]
    tokens = re.findall(r"<([^>]*)>", joined)  # what Slack would parse as a mention or a link
    assert tokens, "the report link is a link"
    for token in tokens:
        url, _, label = token.partition("|")
        assert url.startswith("https://s3.console.aws.amazon.com/s3/object/bucket?prefix=pre%7Cfix%3Ex%3C"), token
        assert not re.search(r"[<>|\s]", url) and "<" not in label and "|" not in label, token


# ---------------------------------------------------------------- 10. whole-call deadlines, the page first, no lock


def wait_for(condition, within_s: float = 30.0) -> bool:
    """Poll `condition` until it holds (True) or `within_s` passes (False): a bound, not a measurement."""
    end = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def test_a_trickling_smtp_server_costs_the_deadline_and_the_page_goes_first(channels, tmp_path):
    slow = TricklingSmtp(every_s=1.0, total=40)  # a 40-byte banner, one byte a second, never a full line
    try:
        configure(tmp_path, channels, email=email_table(slow.port, starttls=True, timeout_s=2))
        os.environ.pop("IMSNB_SMTP_PASSWORD")  # no login needed to be held by the banner
        paged_before = len(channels["pagerduty"].requests)
        seen_at_connect: list[int] = []
        run = fake_run(tmp_path / "out", [("cache.evictions", "CRITICAL")])
        worker = threading.Thread(target=lambda: seen_at_connect.append(notify.deliver([run], mode="changes")))
        worker.start()
        assert wait_for(lambda: slow.sent), "the mail was never tried"
        paged_when_mailing = len(channels["pagerduty"].requests) - paged_before
        worker.join(timeout=60)
        counts = slow.finished()
    finally:
        slow.close()
    [records] = seen_at_connect
    assert paged_when_mailing == 1, "the page went out before the mail started"
    assert counts and all(count < 20 for count in counts), counts  # it left long before the banner's end
    email = [r for r in records if r["channel"] == "email"][0]
    assert email["status"] == "failed" and "deadline exceeded" in email["error"], email
    assert [r["channel"] for r in records] == ["pagerduty", "slack", "email"]


def test_the_state_lock_is_not_held_while_a_channel_is_slow(channels, tmp_path):
    """Two deliveries to one outputs folder: the second sends while the first is still held by a trickling SMTP
    server (with the lock held across the mail, the second would wait for the first to give up)."""
    slow = TricklingSmtp(every_s=1.0, total=40)
    try:
        configure(tmp_path, channels, email=email_table(slow.port, starttls=True, timeout_s=6))
        os.environ.pop("IMSNB_SMTP_PASSWORD")
        outputs = tmp_path / "out"
        first_run = fake_run(outputs, [("cache.hit_rate", "WARNING")])
        second_run = fake_run(outputs, [("cache.memory_used", "WARNING")], name="health_check")
        before = len(channels["slack"].requests)
        first = threading.Thread(target=notify.deliver, args=([first_run],), kwargs={"mode": "changes"})
        first.start()
        assert wait_for(lambda: slow.sent), "the first mail was never tried"
        second = threading.Thread(target=notify.deliver, args=([second_run],), kwargs={"mode": "changes"})
        second.start()

        def second_posted() -> bool:
            return any("health_check" in b["text"] for b in channels["slack"].json_bodies()[before:])

        assert wait_for(second_posted, within_s=20)
        first_still_mailing = first.is_alive()
        first.join(timeout=60)
        second.join(timeout=60)
    finally:
        slow.close()
    assert first_still_mailing, "the second delivery waited for the first one's mail"
    checks = json.loads((outputs / ".notify" / "state.json").read_text())["checks"]
    assert sorted(checks) == ["prod/cache|cache.hit_rate", "prod/cache|cache.memory_used"], "no update was lost"


# ---------------------------------------------------------------- 4. Jira Server / Data Center


@pytest.fixture
def jira_server(monkeypatch):
    """A Jira Server stand-in and the environment of a company running it: a personal access token, no user."""
    server = Jira("unused", "PAT-Nzg5MjM0NTY3ODkwOmJvdA", TICKET, deployment="Server")
    monkeypatch.setenv("JIRA_URL", server.url)
    monkeypatch.setenv("JIRA_API_TOKEN", "PAT-Nzg5MjM0NTY3ODkwOmJvdA")
    monkeypatch.delenv("JIRA_USER", raising=False)
    monkeypatch.delenv("JIRA_DEPLOYMENT", raising=False)
    yield server
    server.close()


WIKI = "click [here|https://evil.example] {color:red}now{color} [~admin] {noformat} escaped? {NOFORMAT}"


def test_jira_server_is_detected_and_gets_v2_with_a_bearer_token_and_text(channels, jira_server, tmp_path):
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")], message=WIKI)
    records = notify.deliver([run], mode="never", ticket=TICKET)
    assert [(r["status"], r["detail"]) for r in records] == [
        ("sent", f"{TICKET}: 2 attachment(s)"),
        ("sent", f"{TICKET}: comment added"),
    ], records
    assert jira_server.problems == []
    methods = [(r["method"], r["path"]) for r in jira_server.requests]
    assert methods[0] == ("GET", "/rest/api/2/serverInfo")
    assert all(path.startswith("/rest/api/2/") for _, path in methods)
    assert {name for _, name, _ in jira_server.attachments} == {"report.html", "summary.json"}
    [text] = jira_server.comments
    assert text.startswith("{noformat}\n") and text.endswith("\n{noformat}")
    assert text.lower().count("{noformat}") == 2, "data cannot end the block and render markup"
    assert "click [here|https://evil.example] {color:red}now{color} [~admin]" in text


def test_jira_data_center_ignores_a_cloud_user_and_a_setting_skips_detection(
    channels, jira_server, tmp_path, monkeypatch
):
    jira_server.deployment = "DataCenter"
    monkeypatch.setenv("JIRA_USER", "someone@example.test")  # a Cloud habit: the token is still sent as Bearer
    monkeypatch.setenv("JIRA_DEPLOYMENT", "datacenter")
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")])
    records = notify.deliver([run], mode="never", ticket=TICKET)
    assert [r["status"] for r in records] == ["sent", "sent"], records
    assert [r["method"] for r in jira_server.requests] == ["POST", "POST"], "JIRA_DEPLOYMENT: no serverInfo asked"
    monkeypatch.setenv("JIRA_DEPLOYMENT", "onprem")
    with pytest.raises(BadParameter, match="JIRA_DEPLOYMENT='onprem': use cloud, server or datacenter"):
        notify.check_ready("never", ticket=TICKET)


def test_jira_cloud_without_jira_user_names_the_email(channels, tmp_path, monkeypatch):
    monkeypatch.delenv("JIRA_USER")
    run = fake_run(tmp_path / "out", [("cache.hit_rate", "ERROR")])
    records = notify.deliver([run], mode="never", ticket=TICKET)  # detected: Cloud
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert "Jira Cloud needs JIRA_USER, the account's email" in records[0]["error"]
    monkeypatch.setenv("JIRA_DEPLOYMENT", "cloud")
    with pytest.raises(BadParameter, match="--ticket needs JIRA_USER in the environment"):
        notify.check_ready("never", ticket=TICKET)


def test_a_jira_server_comment_with_120_long_findings_is_trimmed(jira_server):
    text = jira.comment_text(notice_of(long_findings()))
    assert len(text) <= 32_767 and text.endswith("{noformat}")
    assert jira.comment(jira.Site(jira_server.url, "server"), TICKET, text) == "comment added"
    shown = sum(line.startswith(("CRITICAL |", "ERROR |")) for line in text.splitlines())
    assert 3 <= shown < 120 and f"… and {120 - shown} more in the attached report" in text


# ---------------------------------------------------------------- 5. proxies, as any HTTP client


@pytest.fixture
def behind_a_proxy(channels, tmp_path, monkeypatch):
    """HTTPS stand-ins of PagerDuty and Jira (a private CA) reachable through a forward proxy, as in a company
    network; the proxy's URL in the environment, in the spellings HTTP clients read."""
    proxy = ForwardProxy()
    pd = PagerDuty(ROUTING_KEY, tls=True)
    site = Jira("bot@x.test", JIRA_TOKEN, TICKET, tls=True)
    assert pd.ca_file and site.ca_file
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(pd.ca_file.read_bytes() + site.ca_file.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("IMSNB_PAGERDUTY_URL", pd.events_url)
    monkeypatch.setenv("JIRA_URL", site.url)
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://squid:Pr0xyPass-77@127.0.0.1:{proxy.port}")
    yield proxy, pd, site
    for server in (proxy, pd, site):
        server.close()


def test_https_proxy_carries_every_https_channel_through_a_tunnel(behind_a_proxy, tmp_path):
    proxy, pd, site = behind_a_proxy
    run = fake_run(tmp_path / "out", [("cache.evictions", "CRITICAL")])
    records = notify.deliver([run], mode="changes", ticket=TICKET)
    assert {(r["channel"], r["status"]) for r in records} >= {("pagerduty", "sent"), ("jira", "sent")}, records
    assert f"CONNECT localhost:{pd.port}" in proxy.seen and f"CONNECT localhost:{site.port}" in proxy.seen
    assert all(line.startswith("CONNECT ") for line in proxy.seen), "HTTPS never goes through the proxy in clear"
    basic = "Basic " + base64.b64encode(b"squid:Pr0xyPass-77").decode()
    assert set(proxy.auth) == {basic}, "the proxy's own login, to the proxy only"
    assert all("proxy-authorization" not in r["headers"] for r in pd.requests + site.requests)
    assert [e["dedup_key"] for e in pd.events()] == ["imsnb/prod/cache/cache.evictions"]
    assert len(site.comments) == 1 and pd.problems == site.problems == []


def test_no_proxy_names_the_hosts_reached_directly(behind_a_proxy, tmp_path, monkeypatch):
    proxy, pd, _ = behind_a_proxy
    monkeypatch.setenv("NO_PROXY", "example.invalid,localhost")
    records = notify.deliver([fake_run(tmp_path / "out", [("cache.evictions", "CRITICAL")])], mode="changes")
    assert [r["status"] for r in records if r["channel"] == "pagerduty"] == ["sent"]
    assert proxy.seen == [] and len(pd.events()) == 1


def test_http_proxy_carries_plain_http_to_loopback(channels, tmp_path, monkeypatch):
    proxy = ForwardProxy()
    try:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        before = len(channels["slack"].requests)
        records = notify.deliver([fake_run(tmp_path / "out", [("cache.hit_rate", "WARNING")])], mode="always")
        assert [r["status"] for r in records if r["channel"] == "slack"] == ["sent"]
        assert proxy.seen == [f"POST {channels['slack'].webhook_url}"]
        assert len(channels["slack"].requests) == before + 1
    finally:
        proxy.close()


def test_a_proxy_that_refuses_is_one_line_naming_it(behind_a_proxy, tmp_path, monkeypatch):
    proxy, _, _ = behind_a_proxy
    proxy.close()  # the proxy is down: the channel fails, saying so, without the proxy's password
    records = notify.deliver([fake_run(tmp_path / "out", [("cache.evictions", "CRITICAL")])], mode="changes")
    [page] = [r for r in records if r["channel"] == "pagerduty"]
    assert page["status"] == "failed" and "unreachable" in page["error"] and "Pr0xyPass" not in page["error"]
