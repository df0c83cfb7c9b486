"""Guarantee 10: an action never happens without a record. Each plan is written as `applying` (notebook output and
the runner's journal) before it acts; a kernel killed mid-action leaves `applying`, with the time, in summary.json,
index.html's timeline and report.html. Long waits (the restore in point_in_time_recovery) stop short of the cell
timeout and say so, instead of a timed-out cell that loses the record of a started restore."""

from __future__ import annotations

import http.client
import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
from helpers import read_summary

from imsnb.runs.execute import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KEYS = {"apply_actions": "True", "approver": "jane.oncall"}


def action_notebook(folder: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = json.loads((NOTEBOOKS / "redis_cache.ipynb").read_text())["metadata"]
    params = nbformat.v4.new_code_cell('incident_id = "adhoc"  # ticket')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Dies mid-action\n\n**When to use:** never; a fault-injection fixture."),
        nbformat.v4.new_code_cell("import os\nimport signal\n\nfrom imsnb import actions"),
        params,
        nbformat.v4.new_code_cell(textwrap.dedent(body)),
        nbformat.v4.new_code_cell('print("after the action")'),
    ]
    path = folder / "dies_mid_action.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_kernel_killed_mid_action_leaves_applying_in_summary_index_and_report(own_sandbox, on, tmp_path):
    on(own_sandbox)
    client = own_sandbox.redis.client()
    client.set("imsnb-test:audit", "x")
    notebook = action_notebook(
        tmp_path,
        """
        plan = actions.flush_action(db=0)
        flush = plan.apply


        def flush_then_die():
            flush()  # the action happens ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the kernel is killed before its outcome is recorded


        plan.apply = flush_then_die
        actions.execute([plan], apply_actions=True, approver="jane.oncall", title="Flush")
        """,
    )
    outputs = tmp_path / "outputs"
    result = run_notebook(str(notebook), {}, incident_id="INC-AUDIT", outputs=outputs, allow_actions=True)
    summary = read_summary(result.folder)
    assert summary["status"] == "failed"
    (flush,) = summary["actions"]
    assert flush["action"] == "redis_flushdb" and flush["status"] == "applying", flush
    assert flush["approver"] == "jane.oncall" and flush["applying_at"].endswith("Z") and flush["finished_at"] is None
    index = (outputs / "INC-AUDIT" / "index.html").read_text()
    assert '<td class="applying">applying</td>' in index and f"applying since {flush['applying_at']}" in index
    report = (result.folder / "report.html").read_text()
    assert "still <code>applying</code> when the run stopped" in report and flush["applying_at"] in report


class SlowRestore:
    """A proxy in front of the sandbox's moto server that reports one instance as `creating` for as long as it
    runs, as a real RDS restore does for 10-30 minutes (moto makes instances available at once)."""

    def __init__(self, upstream: str, instance_id: str):
        target = urlsplit(upstream)
        marker = f"DBInstanceIdentifier={instance_id}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream_conn.request("POST", self.path, body=body, headers=headers)
                reply = upstream_conn.getresponse()
                data = reply.read()
                if b"Action=DescribeDBInstances" in body and marker in body:
                    data = data.replace(b">available</DBInstanceStatus>", b">creating</DBInstanceStatus>")
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream_conn.close()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SlowRestore:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_restore_wait_stops_short_of_the_cell_timeout_and_the_restore_is_recorded(own_sandbox, on, tmp_path):
    """Defaults wait 30 min for the restore; with a 30 s cell timeout the wait ends first, and says so."""
    new_instance = "ims-postgres-slow-restore"
    with SlowRestore(own_sandbox.env()["AWS_ENDPOINT_URL"], new_instance) as proxy:
        on(own_sandbox, AWS_ENDPOINT_URL=proxy.url)
        parameters = {**KEYS, "new_instance_id": new_instance}
        result = run_notebook(
            "point_in_time_recovery",
            parameters,
            incident_id="INC-PITR",
            outputs=tmp_path,
            timeout_s=30,
            allow_actions=True,
        )
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    (restore,) = summary["actions"]
    assert restore["action"] == "rds_restore" and restore["status"] == "failed", restore
    assert "the restore was started" in restore["detail"] and "'creating'" in restore["detail"]
    assert "cell timeout of 30 s" in restore["detail"] and "aws rds wait db-instance-available" in restore["detail"]
    assert restore["applying_at"] and restore["finished_at"] >= restore["applying_at"]
    instances = own_sandbox.aws.client("rds").describe_db_instances()["DBInstances"]
    assert new_instance in [d["DBInstanceIdentifier"] for d in instances]
