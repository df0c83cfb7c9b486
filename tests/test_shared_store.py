"""Several workers, one memory: plain `imsnb` processes with their own outputs folders and one shared store (a
private PostgreSQL started here), as a team's workers (cron hosts, Celery or Kubernetes tasks, laptops) run them.

- two workers finding the same failure at once page once, and a later healthy run resolves it once (the second
  waits on the store's notification lock: seen in pg_locks while the first is held by PagerDuty);
- two `imsnb record` at once lose no snapshot (SQLite and PostgreSQL);
- a run on one worker starts its numbers from the snapshot another worker recorded, and every worker's
  `imsnb archive list` shows the run;
- two workers opening the incident's Jira issue at once (`--ticket new`) open one, the second reusing its key;
- an unreachable store is a WARNING naming it without credentials, the run completes, and the store URL (with its
  password) never reaches the run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from helpers import every_byte, finding, read_summary
from notify_servers import Jira, PagerDuty, Slack
from store_server import fake_run, new_store, rows, store_name

from imsnb.history import History
from imsnb.sandbox.postgres import PostgresServer, free_port

pytestmark = pytest.mark.servers  # a PostgreSQL store

ROOT = Path(__file__).resolve().parent.parent
ROUTING_KEY = "SharedRoutingKeyPagerDuty0123456"
WEBHOOK_TOKEN = "WhK9s3cretT0kenForSlackShared55"
DELIVER = """
import json, sys
from pathlib import Path
from imsnb import notify
from imsnb.runs.execute import RunResult
folder = Path(sys.argv[1])
summary = json.loads((folder / "summary.json").read_text())
print(json.dumps(notify.deliver([RunResult(folder, summary, 0)], mode=sys.argv[2], ticket=sys.argv[3] or None)))
"""


@pytest.fixture(scope="module")
def store_server():
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def env_of(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def imsnb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imsnb.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )


def wait_for(condition, within_s: float = 60.0) -> bool:
    """Poll `condition` until it holds (True) or `within_s` passes (False): a bound, not a measurement."""
    end = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------- one failure, two workers, one page


class HeldPagerDuty(PagerDuty):
    """PagerDuty that holds each event until the test lets it go: the worker sending it stays inside the
    notification lock meanwhile."""

    def __init__(self, routing_key: str) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        super().__init__(routing_key)

    def check(self, request):
        self.arrived.set()
        self.release.wait(timeout=120)
        return super().check(request)


@pytest.fixture(scope="module")
def stand_ins():
    servers = {"slack": Slack(WEBHOOK_TOKEN), "pagerduty": HeldPagerDuty(ROUTING_KEY)}
    yield servers
    servers["pagerduty"].release.set()
    for server in servers.values():
        server.close()


def waiting_on_the_lock(server, url: str) -> bool:
    return rows(server, url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0] > 0


def two_workers_deliver(server, url, stand_ins, tmp_path, severity: str) -> list[list[dict]]:
    """Worker A delivers its run and is held by PagerDuty inside the lock; worker B delivers the same finding
    meanwhile and must wait on the lock; then PagerDuty answers. Each worker's records."""
    pd = stand_ins["pagerduty"]
    pd.arrived.clear()
    pd.release.clear()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "imsnb.toml"
    config.write_text(f'[notify.slack]\n[notify.pagerduty]\nurl = "{pd.events_url}"\n')
    env = env_of(
        IMSNB_STATE_URL=url,
        IMSNB_CONFIG=str(config),
        IMSNB_SLACK_WEBHOOK_URL=stand_ins["slack"].webhook_url,
        IMSNB_PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
    )
    workers = []
    for name in ("worker-a", "worker-b"):
        run = fake_run(tmp_path / name, [("cache.evictions", severity)])
        workers.append(
            subprocess.Popen([sys.executable, "-c", DELIVER, str(run.folder), "changes", ""], env=env, **_piped())
        )
        if name == "worker-a":
            assert wait_for(pd.arrived.is_set), "worker A never reached PagerDuty"
    try:
        assert wait_for(lambda: waiting_on_the_lock(server, url)), "worker B did not wait on the notification lock"
    finally:
        pd.release.set()
    outs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outs]
    return [json.loads(out) for out, _ in outs]


def _piped() -> dict:
    return {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}


def test_two_workers_finding_one_failure_page_once_and_a_healthy_run_resolves_once(store_server, stand_ins, tmp_path):
    url = new_store(store_server)
    pd, slack = stand_ins["pagerduty"], stand_ins["slack"]
    before_pd, before_slack = len(pd.requests), len(slack.requests)
    first, second = two_workers_deliver(store_server, url, stand_ins, tmp_path / "failing", "CRITICAL")
    events = pd.events()[before_pd:]
    assert [e["event_action"] for e in events] == ["trigger"], "one page for two workers"
    assert [r["channel"] for r in first if r["status"] == "sent"] == ["pagerduty", "slack"]
    assert [(r["channel"], r["status"]) for r in second] == [("notify", "skipped")], "B found it paged already"
    assert len(slack.requests) - before_slack == 1
    assert rows(store_server, url, "SELECT key, paged FROM notify_checks") == [("prod/cache|cache.evictions", True)]

    before_pd, before_slack = len(pd.requests), len(slack.requests)
    first, second = two_workers_deliver(store_server, url, stand_ins, tmp_path / "healthy", "OK")
    resolved = pd.events()[before_pd:]
    assert [(e["event_action"], e["dedup_key"]) for e in resolved] == [("resolve", events[0]["dedup_key"])]
    assert [(r["channel"], r["status"]) for r in second] == [("notify", "skipped")], "B found it resolved already"
    assert [b["text"].startswith("[RESOLVED]") for b in slack.json_bodies()[before_slack:]] == [True]
    assert rows(store_server, url, "SELECT count(*) FROM notify_checks") == [(0,)]
    assert pd.problems == [] and slack.problems == []


# ---------------------------------------------------------------- one incident, two workers, one Jira issue


JIRA_USER, JIRA_TOKEN = "bot@example.test", "ATATT3xSharedJiraT0ken-77"


def test_two_workers_opening_the_incidents_issue_at_once_open_one(store_server, tmp_path):
    """`--ticket new` on two workers with their own outputs folders: without the store each folder's ticket.json
    would be its own and Jira would get two issues for one incident."""
    url = new_store(store_server)
    site = Jira(JIRA_USER, JIRA_TOKEN, "OPS-999")
    site.create_gate = threading.Event()
    try:
        config = tmp_path / "imsnb.toml"
        config.write_text('[jira]\nproject = "OPS"\n')
        env = env_of(
            IMSNB_STATE_URL=url,
            IMSNB_CONFIG=str(config),
            JIRA_URL=site.url,
            JIRA_USER=JIRA_USER,
            JIRA_API_TOKEN=JIRA_TOKEN,
        )
        workers, runs = [], []
        for name in ("worker-a", "worker-b"):
            run = fake_run(tmp_path / name, [("cache.evictions", "ERROR")], incident="INC-TICKET")
            runs.append(run)
            command = [sys.executable, "-c", DELIVER, str(run.folder), "never", "new"]
            workers.append(subprocess.Popen(command, env=env, **_piped()))
            if name == "worker-a":
                assert site.create_seen.wait(60), "worker A never asked Jira for the issue"
        try:
            assert wait_for(lambda: waiting_on_the_lock(store_server, url)), "worker B did not wait on the store"
        finally:
            site.create_gate.set()
        outs = [w.communicate(timeout=120) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [err for _, err in outs]
        first, second = (json.loads(out) for out, _ in outs)
        creates = [r for r in site.requests if r["path"] == "/rest/api/3/issue"]
        assert len(creates) == 1 and [i["key"] for i in site.issues] == ["OPS-1"]
        assert first[0]["detail"].startswith("OPS-1: opened in OPS")
        assert [r["detail"] for r in second] == ["OPS-1: 2 attachment(s)", "OPS-1: comment added"]
        tickets = [json.loads((run.folder.parent / "ticket.json").read_text())["key"] for run in runs]
        assert tickets == ["OPS-1", "OPS-1"], "each worker's index links the one issue"
        assert rows(store_server, url, "SELECT incident, ticket_key FROM tickets") == [("INC-TICKET", "OPS-1")]
        assert site.problems == []
    finally:
        site.create_gate.set()
        site.close()


# ---------------------------------------------------------------- two recorders, no snapshot lost


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_two_recorders_at_once_lose_no_snapshot(store_server, degraded, tmp_path, dialect):
    url = new_store(store_server) if dialect == "postgresql" else f"sqlite://{tmp_path}/state.sqlite"
    env = env_of(IMSNB_STATE_URL=url)
    command = [sys.executable, "-m", "imsnb.cli", "record", "--every", "1s", "--for", "4s"]
    recorders = [subprocess.Popen(command, env=env, **_piped()) for _ in range(2)]
    outs = [r.communicate(timeout=120) for r in recorders]
    assert [r.returncode for r in recorders] == [0, 0], [err for _, err in outs]
    said = [line for out, _ in outs for line in out.splitlines()]
    assert not [line for line in said if "not written" in line or "not recorded" in line], said
    reported = sum(int(line.rsplit(": ", 1)[1].split()[0]) for line in said if line.endswith(("snapshot", "snapshots")))
    rounds = [int(err.strip().splitlines()[-1].split()[0]) for _, err in outs]
    assert min(rounds) >= 2 and reported >= 2 * 2 * 3, (rounds, said)
    assert History(url).count() == reported, "every snapshot either recorder took is in the store"


# ---------------------------------------------------------------- what one worker recorded, another uses


def test_a_run_on_one_worker_starts_from_what_another_worker_recorded(store_server, degraded, tmp_path):
    url = new_store(store_server)
    env = env_of(IMSNB_STATE_URL=url)
    recorded = imsnb("record", env=env)  # worker A: no outputs folder at all, only the store
    assert recorded.returncode == 0 and "3 snapshots" in recorded.stdout, recorded.stdout + recorded.stderr
    [[taken_at]] = rows(store_server, url, "SELECT max(taken_at) FROM snapshots WHERE source = 'pg_stat_statements'")
    recorded_at = datetime.fromtimestamp(taken_at, UTC)
    start = (recorded_at - timedelta(seconds=1)).isoformat()
    outputs_b = tmp_path / "worker-b"
    run = imsnb(
        "run", "db_performance", "--incident", "INC-SHARED", "--outputs", str(outputs_b),
        "-p", "start", start, "-p", "sample_s", "2", env=env,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    folder = next((outputs_b / "INC-SHARED").glob("*-db_performance"))
    summary = read_summary(folder)
    period = finding(summary, "postgres.slow_queries")["period"]
    assert period["basis"] == "history", period
    assert period["from"] == recorded_at.isoformat(timespec="seconds"), (period, recorded_at)
    assert f"taken by imsnb record at {recorded_at:%H:%M:%S} UTC" in period["note"]
    assert not [f for f in summary["findings"] if f["check"] == "host.state_store"]
    # worker A's archive listing (an outputs folder that holds nothing) shows worker B's run, from the catalogue
    listed = imsnb("archive", "list", "--outputs", str(tmp_path / "worker-a"), env=env)
    [line] = [line for line in listed.stdout.splitlines() if line.startswith("INC-SHARED ")]
    assert "1 run(s)" in line and summary["severity"] in line
    assert store_server.password.encode() not in every_byte(outputs_b)


# ---------------------------------------------------------------- an unreachable store, and its URL a secret


def probe_notebook(path: Path) -> Path:
    """A notebook that samples the database and prints the store URL: the URL must not survive into the folder."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Store probe\n\n**When to use:** tests of imsnb's store."),
        nbformat.v4.new_code_cell("import os\n\nfrom imsnb import incident\nfrom imsnb.report import report"),
        nbformat.v4.new_code_cell(
            'incident_id = "adhoc"  # incident\nsample_s = 1.0  # sample', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(
            'run = incident.begin("store_probe", incident_id=incident_id, sample_s=sample_s, db=True)\n'
            "findings, sample = run.findings, run.sample\n"
            'print("the store is", os.environ["IMSNB_STATE_URL"])\n'
            'with findings.section("postgres.slow_queries"):\n'
            "    top = sample.statements(limit=3)\n"
            "run.close()\n"
            "report(findings)"
        ),
    ]
    nbformat.write(nb, path)
    return path


def test_an_unreachable_store_is_a_warning_and_its_url_never_reaches_the_run_folder(degraded, tmp_path):
    port = free_port()
    password = "St0reSecretPw-for-imsnb"
    url = f"postgresql://imsnb_team:{password}@127.0.0.1:{port}/imsnb_state"
    outputs = tmp_path / "outputs"
    run = imsnb("run", str(probe_notebook(tmp_path / "store_probe.ipynb")), "--outputs", str(outputs),
                env=env_of(IMSNB_STATE_URL=url))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    folder = next((outputs / "adhoc").glob("*-store_probe"))
    summary = read_summary(folder)
    assert summary["status"] == "ok"
    store = finding(summary, "host.state_store")
    assert store["severity"] == "WARNING" and store_name(url) in store["message"]
    assert "snapshot(s) of this run not written" in store["message"] and store["value"] >= 4
    assert "not recorded in the store" in run.stderr and store_name(url) in run.stderr
    blob = every_byte(folder) + (run.stdout + run.stderr).encode()
    for secret in (url, password, f"imsnb_team:{password}"):
        assert secret.encode() not in blob, secret
    nb = (folder / "notebook.ipynb").read_text()
    assert "the store is ********" in nb, "the URL the notebook printed is scrubbed, not missing"
