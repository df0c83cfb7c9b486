"""The daily baseline where people look: performance_baseline posts its Grafana annotation to a local Grafana
stand-in that checks the contract (POST /api/annotations, Bearer token, JSON with tags baseline and daily, the run's
report link in the text), and exports the key Prometheus series (the session sandbox's real Prometheus) into the run
folder as metrics-YYYYMMDD.json, uploaded with the run to S3 (the sandbox's moto). The token is in no artifact."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import every_byte, finding, read_summary

from imsnb import archive, grafana
from imsnb.findings import Findings, Severity
from imsnb.runs.execute import run_notebook

TOKEN = "glsa_" + secrets.token_hex(16)


class Grafana(BaseHTTPRequestHandler):
    """Answers as Grafana's HTTP API does, only to a request that keeps the annotation contract."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
        request["content_type"] = self.headers.get("Content-Type")
        Grafana.received.append(request)
        if self.path != "/api/annotations":
            return self._answer(404, {"message": "Not found"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(401, {"message": "Invalid API key"})
        try:
            sent = json.loads(body)
        except ValueError:
            return self._answer(400, {"message": "bad request data"})
        if request["content_type"] != "application/json" or not isinstance(sent.get("time"), int):
            return self._answer(400, {"message": "bad request data"})
        if not isinstance(sent.get("text"), str) or not isinstance(sent.get("tags"), list):
            return self._answer(400, {"message": "bad request data"})
        return self._answer(200, {"message": "Annotation added", "id": 41})

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def grafana_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Grafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_baseline_is_annotated_in_grafana_and_its_metrics_kept_with_the_run(
    degraded, grafana_url, monkeypatch, tmp_path
):
    monkeypatch.setenv("GRAFANA_URL", grafana_url)
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    Grafana.received.clear()
    result = run_notebook("performance_baseline", {"sample_s": "1"}, incident_id="INC-BASE", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"

    (request,) = Grafana.received
    sent = json.loads(request["body"])
    assert request["path"] == "/api/annotations" and request["authorization"] == f"Bearer {TOKEN}"
    assert sent["tags"] == ["baseline", "daily"]
    assert (result.folder / "report.html").as_uri() in sent["text"], "the annotation links this run's report"
    posted = finding(summary, "grafana.annotation")
    assert posted["severity"] == "OK" and posted["value"] == 41

    name = f"metrics-{summary['window']['end'][:10].replace('-', '')}.json"  # the runbook's $(date +%Y%m%d)
    exported = json.loads((result.folder / name).read_text())
    assert set(exported["series"]) == {"up", "request_rate", "error_rate", "p95_latency_s"}
    assert exported["series"]["up"]["result"] and exported["series"]["request_rate"]["result"][0]["values"]
    assert summary["files"] == [name]
    assert finding(summary, "prometheus.export")["severity"] == "OK"
    assert TOKEN.encode() not in every_byte(result.folder)

    bucket = f"imsnb-archive-{secrets.token_hex(4)}"
    degraded.aws.client("s3").create_bucket(Bucket=bucket)
    keys = archive.upload(f"s3://{bucket}/runs", [result.folder], result.folder.parent)
    assert f"runs/INC-BASE/{result.folder.name}/{name}" in keys
    stored = degraded.aws.client("s3").get_object(Bucket=bucket, Key=f"runs/INC-BASE/{result.folder.name}/{name}")
    assert stored["Body"].read() == (result.folder / name).read_bytes()


def test_a_refused_token_is_a_warning_and_no_grafana_is_skipped(grafana_url, monkeypatch):
    monkeypatch.setenv("GRAFANA_URL", grafana_url)
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong")
    refused = grafana.annotation_finding(grafana.post_annotation("Daily baseline captured"))
    assert refused.severity == Severity.WARNING
    assert "HTTP 401: Invalid API key" in refused.message and "GRAFANA_TOKEN" in refused.message

    monkeypatch.delenv("GRAFANA_URL")
    findings = Findings()
    with findings.section("grafana.annotation"):
        grafana.post_annotation("Daily baseline captured")
    (skipped,) = findings
    assert (skipped.check, skipped.severity) == ("grafana.configured", Severity.INFO)
    assert skipped.message == "no Grafana: set GRAFANA_URL to post the baseline annotation: skipped"
