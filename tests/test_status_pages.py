"""Third-party status pages (`[status_pages]` in imsnb.toml) read from a local Statuspage stand-in over HTTP: a
provider reporting an incident is a WARNING naming it, in high_error_rate and in triage; a page that trickles its
answer is cut off by the whole-call deadline; an unreadable page says why."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import read_summary

from imsnb import status_pages, triage
from imsnb.errors import NotConfigured
from imsnb.findings import Findings, Severity
from imsnb.runs.execute import run_notebook
from imsnb.window import resolve_window

PAGES = {
    "/payments/api/v2/status.json": ("major", "Partial System Outage"),
    "/mail/api/v2/status.json": ("none", "All Systems Operational"),
}


class StatusPages(BaseHTTPRequestHandler):
    stop = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path in PAGES:
            indicator, description = PAGES[self.path]
            body = json.dumps(
                {
                    "page": {"id": "x1", "name": self.path.split("/")[1], "updated_at": "2026-12-02T10:00:00Z"},
                    "status": {"indicator": indicator, "description": description},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/slow/"):  # five bytes a second, for as long as it is let: never silent
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            while not self.stop.wait(0.2):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
        else:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatusPages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    StatusPages.stop.set()
    server.shutdown()
    server.server_close()


def _config(tmp_path, monkeypatch, lines: list[str]) -> None:
    path = tmp_path / "imsnb.toml"
    path.write_text("[status_pages]\n" + "\n".join(lines) + "\n")
    monkeypatch.setenv("IMSNB_CONFIG", str(path))


def test_an_incident_on_a_status_page_is_a_warning_naming_the_provider(stand_in, tmp_path, monkeypatch):
    _config(
        tmp_path,
        monkeypatch,
        [
            f'payments = "{stand_in}/payments/api/v2/status.json"',
            f'mail = "{stand_in}/mail/api/v2/status.json"',
            f'slow = "{stand_in}/slow/api/v2/status.json"',
            f'broken = "{stand_in}/broken/api/v2/status.json"',
        ],
    )
    statuses = status_pages.page_statuses(timeout_s=1.0)
    assert statuses["provider"].tolist() == ["payments", "mail", "slow", "broken"]
    assert statuses["indicator"].tolist()[:2] == ["major", "none"]
    by_provider = dict(zip(statuses["provider"], status_pages.status_findings(statuses), strict=True))
    assert by_provider["payments"].severity == Severity.WARNING
    assert by_provider["payments"].message.startswith("payments reports major (Partial System Outage)")
    assert by_provider["mail"].severity == Severity.OK
    assert by_provider["slow"].severity == Severity.INFO and "deadline exceeded" in by_provider["slow"].message
    assert by_provider["broken"].severity == Severity.INFO and "HTTP 500" in by_provider["broken"].message


def test_status_pages_configuration_is_checked_and_optional(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, ['payments = "status.example.com/api/v2/status.json"'])
    with pytest.raises(NotConfigured) as refused:
        status_pages.page_statuses()
    assert "[status_pages] payments must be an http(s) URL" in str(refused.value) and "\n" not in str(refused.value)
    (tmp_path / "imsnb.toml").write_text("[environments.prod]\nDB_HOST = 'db'\n")
    assert status_pages.third_party_findings() == []  # triage adds nothing where none is configured
    findings = Findings()
    with findings.section("api.third_party_status"):
        status_pages.page_statuses()
    (skipped,) = findings
    assert (skipped.check, skipped.severity) == ("api.third_party_status", Severity.INFO)
    assert skipped.message.startswith("no [status_pages] in imsnb.toml") and skipped.message.endswith("skipped")


@pytest.mark.servers  # notebook runs on the session's sandbox
def test_triage_and_high_error_rate_show_the_provider(stand_in, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, [f'payments = "{stand_in}/payments/api/v2/status.json"'])
    findings = triage.key_findings(resolve_window("30m"), cache_latency_samples=5)
    (payments,) = [f for f in findings if f.check == "api.third_party_status"]
    assert payments.severity == Severity.WARNING and "payments reports major" in payments.message
    table = triage.key_metrics(findings)
    assert "payments reports major" in " ".join(table.loc[table["check"] == "api.third_party_status", "message"])

    result = run_notebook("high_error_rate", {"window": "30m"}, incident_id="INC-3P", outputs=tmp_path / "out")
    summary = read_summary(result.folder)
    (shown,) = [f for f in summary["findings"] if f["check"] == "api.third_party_status"]
    assert shown["severity"] == "WARNING" and shown["message"].startswith("payments reports major")
