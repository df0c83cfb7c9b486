"""imsnb.archive: the incident index, archive list/show, S3 upload (moto server), summarize, lab."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from helpers import ROOT, read_summary

from imsnb import archive
from imsnb.archive.upload import archived_urls
from imsnb.bundles import WINDOW_MIME
from imsnb.errors import BadParameter
from imsnb.runs.index import iso
from imsnb.runs.summary import summarize
from imsnb.window import parse_instant


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsnb.cli", *args], cwd=cwd, capture_output=True, text=True, env=env)


def fake_run(incident: Path, name: str, started: str, severity: str, **extra) -> Path:
    """A run folder with only a summary.json, as a run writes it (for index tests that need no kernel)."""
    folder = incident / f"{started.replace('-', '').replace(':', '')}-{name}"
    folder.mkdir(parents=True)
    summary = {
        "notebook": name,
        "incident_id": incident.name,
        "status": "ok",
        "started_at": started,
        "duration_s": 2.5,
        "parameters": {"window": "30m"},
        "severity": severity,
        "findings": [{"check": f"{name}.check", "severity": severity, "message": f"{name} says {severity}"}],
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


# ---------------------------------------------------------------- index.html


def test_index_escapes_everything_and_shows_actions_and_postmortem_notes(tmp_path):
    incident = tmp_path / "INC-9"
    fake_run(incident, "db_performance", "2026-02-08T15:30:00Z", "ERROR")
    evil = fake_run(incident, "x", "2026-02-08T15:35:00Z", "WARNING")
    summary = json.loads((evil / "summary.json").read_text())
    summary["findings"][0]["message"] = '<script>alert(1)</script><img src="http://evil.example/x.png">'
    summary["actions"] = [
        {
            "action": "terminate_backend",
            "target": "pid 4242",
            "reason": "idle in transaction, blocking 3 sessions",
            "status": "applied",
            "detail": "pg_terminate_backend returned true",
            "approver": "alice",
            "planned_at": "2026-02-08T15:36:00Z",
            "finished_at": "2026-02-08T15:36:05Z",
        }
    ]
    (evil / "summary.json").write_text(json.dumps(summary))
    (incident / "postmortem.json").write_text(
        json.dumps({"root_cause": "a migration <held> a lock", "action_items": ["add lock_timeout", "alert on it"]})
    )
    text = archive.write_index(incident).read_text()
    assert "<script>" not in text and 'src="http' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Time window: 2026-02-08T15:00:00Z – 2026-02-08T15:35:00Z" in text
    assert 'worst finding: <span class="ERROR">ERROR</span>' in text
    # timeline: findings at their run's start, the action at its planned time, in order
    rows = [ln for ln in text.split("<tr>") if "db_performance.check" in ln or "terminate_backend" in ln]
    assert "15:30:00Z" in rows[0] and "terminate_backend pid 4242" in rows[1] and "applied" in rows[1]
    assert "approved by alice" in rows[1] and "finished 2026-02-08T15:36:05Z" in rows[1]
    assert "a migration &lt;held&gt; a lock" in text and "- add lock_timeout\n- alert on it" in text
    assert [p.name for p in incident.iterdir() if p.name.startswith(".")] == []


def test_index_without_actions_key_and_with_explicit_start_end(tmp_path):
    incident = tmp_path / "INC-10"
    fake_run(incident, "a", "2026-02-08T16:00:00Z", "OK", parameters={"start": "2026-02-08T12:00:00Z", "end": ""})
    fake_run(incident, "performance_baseline", "2026-02-08T16:30:00Z", "OK", parameters={})  # its default: 24h
    text = archive.write_index(incident).read_text()
    assert "Time window: 2026-02-07T16:30:00Z – 2026-02-08T16:30:00Z" in text
    assert "no findings above OK and no actions" in text
    assert "<dt>Root cause</dt><dd class=unwritten>not written yet</dd>" in text
    assert "<textarea" not in text and "<form" not in text, "no box that forgets what is typed into it"


def test_a_run_that_records_its_window_is_read_as_recorded_and_old_folders_fall_back(tmp_path):
    incident = tmp_path / "INC-11"
    recorded = {"start": "2026-02-08T09:00:00Z", "end": "2026-02-08T09:10:00Z"}
    fake_run(incident, "db_performance", "2026-02-08T16:00:00Z", "OK", window=recorded)  # self-described
    fake_run(incident, "performance_baseline", "2026-02-08T12:00:00Z", "OK", parameters={})  # old: default 24h
    runs = archive.read_runs(incident)
    assert [tuple(t.isoformat() for t in archive.run_window(r)) for r in runs] == [
        ("2026-02-07T12:00:00+00:00", "2026-02-08T12:00:00+00:00"),
        ("2026-02-08T09:00:00+00:00", "2026-02-08T09:10:00+00:00"),
    ]
    assert archive.incident_window(runs) == ("2026-02-07T12:00:00Z", "2026-02-08T12:00:00Z")
    assert archive.run_window({"window": {"start": "soon"}, "started_at": "never"}) is None


def test_a_run_records_its_window_and_the_index_shows_it_without_the_notebook(degraded, tmp_path, monkeypatch):
    from imsnb.runs.execute import run_notebook

    result = run_notebook("health_check", {"sample_s": "0", "window": "20m"}, incident_id="INC-WIN", outputs=tmp_path)
    summary = read_summary(result.folder)
    start, end = summary["window"]["start"], summary["window"]["end"]
    shown_by_setup = [  # what the notebook itself said in its set-up cell
        "".join(out["data"]["text/plain"])
        for cell in json.loads((result.folder / "notebook.ipynb").read_text())["cells"]
        for out in cell.get("outputs", [])
        if WINDOW_MIME in out.get("data", {})
    ]
    assert shown_by_setup == [f"Incident INC-WIN: window {start[:10]} {start[11:19]} – {end[:10]} {end[11:19]} UTC"]
    # The folder describes itself: no executed notebook, and no notebook catalogue to fall back on.
    (result.folder / "notebook.ipynb").unlink()
    monkeypatch.setenv("IMSNB_NOTEBOOKS", str(tmp_path / "no-notebooks-here"))
    text = archive.write_index(tmp_path / "INC-WIN").read_text()
    assert f"Time window: {start} – {end}" in text and f"<td class=t>{start} – {end}</td>" in text
    shown = run_cli("archive", "show", "INC-WIN", "--outputs", str(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0 and f"window: {start} – {end}" in shown.stdout, shown.stderr


def test_concurrent_index_writes_never_lose_a_run(tmp_path):
    incident = tmp_path / "INC-11"
    incident.mkdir()

    def add(i: int) -> None:
        fake_run(incident, f"nb{i}", f"2026-02-08T16:00:{i:02d}Z", "OK")
        archive.write_index(incident)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = (incident / "index.html").read_text()
    folders = [p.name for p in incident.iterdir() if p.is_dir()]
    assert len(folders) == 12 and all(f'href="{name}/report.html"' in text for name in folders)
    assert sorted(p.name for p in incident.iterdir() if p.is_file()) == ["index.html"]


# ---------------------------------------------------------------- list / show


def test_archive_list_newest_first_with_worst_severity_and_run_count(tmp_path):
    fake_run(tmp_path / "INC-OLD", "a", "2026-02-08T10:00:00Z", "CRITICAL")
    fake_run(tmp_path / "INC-NEW", "a", "2026-02-09T10:00:00Z", "OK")
    fake_run(tmp_path / "INC-NEW", "b", "2026-02-09T10:01:00Z", "WARNING")
    (tmp_path / "INC-EMPTY").mkdir()
    result = run_cli("archive", "list", "--outputs", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["INC-NEW", "INC-OLD"]
    assert lines[0].split()[1:] == ["2026-02-09T10:01:00Z", "WARNING", "2", "run(s)"]
    assert lines[1].split()[2:4] == ["CRITICAL", "1"]


def test_archive_show_on_the_suites_incident(degraded_suite):
    outputs, results, _ = degraded_suite
    result = run_cli("archive", "show", "INC-SUITE", "--outputs", str(outputs), cwd=outputs)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"incident INC-SUITE: {len(results)} run(s), worst ")
    for r in results:
        assert r.folder.name in out
    assert "postgres.blocked_queries" in out and "window: " in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["archive", "show", "INC-NOPE"], "no runs for incident 'INC-NOPE'"),
        (["archive", "show", "../etc"], "is not usable"),
        (["archive", "list", "--outputs", "nowhere"], "no archive at nowhere"),
    ],
)
def test_archive_bad_input(tmp_path, args, needle):
    (tmp_path / "outputs").mkdir()
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- S3 upload (moto server)


@pytest.fixture
def bucket(degraded):
    s3 = boto3.client("s3")
    name = "imsnb-archive-test"
    s3.create_bucket(Bucket=name)
    yield s3, name
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def bucket_files(s3, name: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
    return {k: s3.get_object(Bucket=name, Key=k)["Body"].read() for k in keys}


def local_files(incident: Path, under: str) -> dict[str, bytes]:
    """The incident folder's files as the archive keys them, without imsnb's dot files and the local index.html (the
    archive's own is written for the archive)."""
    files = [p for p in incident.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "index.html"]
    return {f"{under}{p.relative_to(incident)}": p.read_bytes() for p in files}


def archive_links(page: bytes) -> set[str]:
    return set(re.findall(r'href="([^"]+)/report.html"', page.decode()))


def test_suite_archive_lands_every_file_byte_for_byte(degraded_suite, bucket):
    outputs, results, _ = degraded_suite
    s3, name = bucket
    incident = outputs / "INC-SUITE"
    keys = archive.upload(f"s3://{name}/ims/archive/", [r.folder for r in results], incident)
    local = local_files(incident, "ims/archive/INC-SUITE/")
    kept = {r.summary["notebook"]: r.summary.get("files", []) for r in results if r.summary.get("files")}
    assert list(kept) == ["performance_baseline"] and kept["performance_baseline"][0].startswith("metrics-")
    assert len(local) == 3 * len(results) + 1  # the three files of each run, the metrics export
    assert sorted(keys) == sorted([*local, "ims/archive/INC-SUITE/index.html"])
    files = bucket_files(s3, name)
    index = files.pop("ims/archive/INC-SUITE/index.html")
    assert files == local
    assert archive_links(index) == {r.folder.name for r in results}, "every run linked by its name in the archive"
    assert {(r.folder / archive.ARCHIVED).read_text().strip() for r in results} == {
        f"s3://{name}/ims/archive/INC-SUITE/{r.folder.name}" for r in results
    }


def _worker_run(root: Path, worker: str, incident: str = "INC-SAME") -> Path:
    folder = root / worker / incident / "20261203T120000Z-health_check"
    folder.mkdir(parents=True)
    summary = {"notebook": "health_check", "started_at": "2026-12-03T12:00:00Z", "status": "ok", "worker": worker}
    for file in archive.RUN_FILES:
        (folder / file).write_text(json.dumps(summary) if file == "summary.json" else f"{worker}:{file}")
    return folder


def test_runs_of_two_workers_in_the_same_second_are_both_archived(bucket, tmp_path):
    """Run folders are named by their start to the second: two workers' runs of one notebook and incident in the
    same second keep both in S3 (the second as -2), the same run uploaded again (a retry) keeps its name, and the
    archive's index.html links the second by the name it got there, not its folder's."""
    s3, name = bucket
    folders = [_worker_run(tmp_path, worker) for worker in ("a", "b")]
    url = f"s3://{name}/arch"
    first = archive.upload(url, [folders[0]], folders[0].parent)
    second = archive.upload(url, [folders[1]], folders[1].parent)
    index = bucket_files(s3, name)["arch/INC-SAME/index.html"]
    again = archive.upload(url, [folders[0]], folders[0].parent)
    base = "arch/INC-SAME/20261203T120000Z-health_check"
    assert first == again == [*(f"{base}/{file}" for file in archive.RUN_FILES), "arch/INC-SAME/index.html"]
    assert second == [*(f"{base}-2/{file}" for file in archive.RUN_FILES), "arch/INC-SAME/index.html"]
    files = bucket_files(s3, name)
    assert sorted(files) == sorted(set(first + second))
    assert json.loads(files[f"{base}/summary.json"])["worker"] == "a"
    assert json.loads(files[f"{base}-2/summary.json"])["worker"] == "b"
    assert files[f"{base}-2/report.html"] == b"b:report.html"
    assert archive_links(index) == {"20261203T120000Z-health_check-2"}, "b's index links b's run where it landed"
    assert archive_links(files["arch/INC-SAME/index.html"]) == {"20261203T120000Z-health_check"}


def test_with_a_shared_store_the_archive_index_links_every_workers_runs(bucket, tmp_path, monkeypatch):
    """Two workers (their own outputs folders, one store) archive one incident to one bucket: the index.html the
    last one uploads links both runs by their names in the archive; a run another worker has not archived is named
    with its worker and folder, not linked."""
    from imsnb.state.catalogue import record_run

    s3, name = bucket
    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    folders = [_worker_run(tmp_path, worker) for worker in ("a", "b", "c")]
    for folder in folders:
        assert record_run(folder, json.loads((folder / "summary.json").read_text())) is None
    url = f"s3://{name}/arch"
    archive.upload(url, [folders[0]], folders[0].parent)
    archive.upload(url, [folders[1]], folders[1].parent)
    page = bucket_files(s3, name)["arch/INC-SAME/index.html"]
    links = archive_links(page)
    assert links == {"20261203T120000Z-health_check", "20261203T120000Z-health_check-2"}, links
    assert f"not in this archive; on {archive_worker()}: <code>{folders[2].resolve()}</code>" in page.decode()
    assert (folders[2] / "index.html").exists() is False, "the local folders are untouched"


def test_an_upload_landing_while_another_renders_the_index_is_not_written_over(bucket, tmp_path, monkeypatch):
    """Two workers upload one incident at once: b's whole upload lands after a rendered its index.html and before it
    wrote it. a's page, rendered without b's run, must not replace b's: a renders again and links both."""
    from imsnb.state.catalogue import record_run

    upload_module = importlib.import_module("imsnb.archive.upload")  # the module: imsnb.archive.upload is the function

    s3, name = bucket
    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    folders = [_worker_run(tmp_path, worker) for worker in ("a", "b")]
    for folder in folders:
        assert record_run(folder, json.loads((folder / "summary.json").read_text())) is None
    url = f"s3://{name}/arch"
    render, renders = upload_module.render_incident, []

    def b_lands_meanwhile(incident_dir: Path, **kwargs) -> str:
        page = render(incident_dir, **kwargs)
        renders.append(incident_dir)
        if len(renders) == 1:
            archive.upload(url, [folders[1]], folders[1].parent)
        return page

    monkeypatch.setattr(upload_module, "render_incident", b_lands_meanwhile)
    archive.upload(url, [folders[0]], folders[0].parent)
    links = archive_links(bucket_files(s3, name)["arch/INC-SAME/index.html"])
    assert links == {"20261203T120000Z-health_check", "20261203T120000Z-health_check-2"}, links
    assert renders == [folders[0].parent, folders[1].parent, folders[0].parent], "a rendered again, once"


def test_a_run_archived_to_two_archives_stays_linked_in_the_first(bucket, tmp_path):
    """A run uploaded to one archive, then another: the first archive's index, rebuilt by a later run's upload,
    still links it (the folder keeps where it is in each archive, not only the last)."""
    s3, name = bucket
    first, later = _worker_run(tmp_path, "a"), tmp_path / "a" / "INC-SAME" / "20261203T130000Z-health_check"
    shutil.copytree(first, later)
    archive.upload(f"s3://{name}/one", [first], first.parent)
    archive.upload(f"s3://{name}/two", [first], first.parent)
    archive.upload(f"s3://{name}/one", [later], later.parent)
    assert archived_urls(first) == [
        f"s3://{name}/one/INC-SAME/{first.name}",
        f"s3://{name}/two/INC-SAME/{first.name}",
    ]
    files = bucket_files(s3, name)
    assert archive_links(files["one/INC-SAME/index.html"]) == {first.name, later.name}
    assert archive_links(files["two/INC-SAME/index.html"]) == {first.name}


def archive_worker() -> str:
    from imsnb.state.catalogue import worker_name

    return worker_name()


def test_run_cli_archives_via_env_and_a_failed_upload_is_one_line(degraded, bucket, tmp_path):
    import os

    s3, name = bucket
    env = {**os.environ, "IMSNB_ARCHIVE": f"s3://{name}"}
    result = run_cli("run", "health_check", "--incident", "INC-S3", "--fail-on", "CRITICAL", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "archived 4 file(s) to s3://imsnb-archive-test/INC-S3/" in result.stdout
    incident = tmp_path / "outputs" / "INC-S3"
    files = bucket_files(s3, name)
    assert archive_links(files.pop("INC-S3/index.html")) == {p.name for p in incident.iterdir() if p.is_dir()}
    assert files == local_files(incident, "INC-S3/")
    # a bucket that does not exist: the run is kept, its exit status unchanged, one line on stderr
    result = run_cli(
        "run", "health_check", "--incident", "INC-S3", "--fail-on", "CRITICAL", "--archive", "s3://no-such-bucket/x",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0
    warnings = [ln for ln in result.stderr.splitlines() if "archive upload" in ln]
    assert len(warnings) == 1 and "s3://no-such-bucket/x failed" in warnings[0] and "NoSuchBucket" in warnings[0]
    assert len([p for p in incident.iterdir() if p.is_dir()]) == 2


def test_archive_url_must_be_s3():
    assert archive.parse_archive_url("s3://bucket") == ("bucket", "")
    assert archive.parse_archive_url("s3://my.bucket/a/b/") == ("my.bucket", "a/b")
    for bad in ("bucket", "http://bucket/x", "s3://", "s3://UPPER"):
        with pytest.raises(BadParameter, match="is not an S3 URL"):
            archive.parse_archive_url(bad)


# ---------------------------------------------------------------- summarize


def test_summarize_a_notebook_run_with_plain_papermill(degraded, tmp_path):
    executed = tmp_path / "plain.ipynb"
    password = degraded.postgres.password
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"), "--log-level", "ERROR",
            str(ROOT / "notebooks" / "health_check.ipynb"), str(executed),
            "-p", "window", "30m", "-p", "incident_id", "INC-PM", "-p", "note", password,
        ],
        capture_output=True, text=True, cwd=ROOT / "notebooks",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert password in executed.read_text(), "papermill writes parameters verbatim (why summarize scrubs)"
    out = run_cli("summarize", str(executed), "--output", str(tmp_path / "summary.json"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "wrote " in out.stdout and "health_check completed in " in out.stdout
    summary = read_summary(tmp_path)
    assert summary["notebook"] == "health_check" and summary["incident_id"] == "INC-PM"
    assert summary["status"] == "ok" and summary["started_at"] and summary["duration_s"] > 0
    assert summary["parameters"]["window"] == "30m" and summary["parameters"]["note"] == "********"
    connections = next(f for f in summary["findings"] if f["check"] == "postgres.connections_used")
    assert connections["severity"] == "WARNING"
    assert summary["severity"] in ("WARNING", "ERROR", "CRITICAL")
    assert password not in (tmp_path / "summary.json").read_text()
    # to stdout, the same
    printed = run_cli("summarize", str(executed), cwd=tmp_path)
    assert json.loads(printed.stdout)["findings"] == summary["findings"]
    # the window the set-up cell showed; for a notebook that shows none, the one its parameters describe
    window = summary["window"]
    assert parse_instant(window["end"]) - parse_instant(window["start"]) == timedelta(minutes=30)
    nb = json.loads(executed.read_text())
    # no `-p incident_id`: the id is the one the set-up cell showed (the notebook's default), not null
    nb["metadata"]["papermill"]["parameters"].pop("incident_id")
    assert summarize(nb)["incident_id"] == "INC-PM"
    for cell in nb["cells"]:
        cell["outputs"] = [o for o in cell.get("outputs", []) if WINDOW_MIME not in o.get("data", {})]
    derived = summarize(nb)["window"]
    started = parse_instant(nb["metadata"]["papermill"]["start_time"]).replace(microsecond=0)
    assert derived == {"start": iso(started - timedelta(minutes=30)), "end": iso(started)}


def test_summarize_bad_input_writes_nothing(tmp_path):
    (tmp_path / "not.ipynb").write_text("{ nope")
    result = run_cli("summarize", "not.ipynb", "--output", "s.json", cwd=tmp_path)
    assert result.returncode == 2 and "is not a readable notebook" in result.stderr
    assert not (tmp_path / "s.json").exists()


# ---------------------------------------------------------------- interactive


def test_a_fresh_kernel_needs_no_setup_code(degraded):
    """`from imsnb import postgres; postgres.blocked_queries()` in a fresh kernel connects from the environment."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from imsnb import postgres\nblocked = postgres.blocked_queries()\nprint('blocked', len(blocked))"
        )
    ]
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "blocked 1" in text, nb.cells[0].outputs


@pytest.mark.servers  # `imsnb lab --sandbox` starts one
def test_lab_dry_run_shows_the_command_and_the_sandbox_targets(tmp_path):
    result = run_cli("lab", "--sandbox", "healthy", "--port", "8899", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    command, *env_lines = result.stdout.splitlines()
    assert command.split()[1:3] == ["-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path / 'outputs' / '.lab'}/" in command and "--ServerApp.port=8899" in command
    env = dict(line.split("=", 1) for line in env_lines)
    assert env["DB_HOST"] == "127.0.0.1" and int(env["DB_PORT"]) > 0 and env["AWS_ENDPOINT_URL"].startswith("http")
    assert env["DB_PASSWORD"] == env["REDIS_PASSWORD"] == "********"
    assert "sandbox stopped" in result.stderr


def test_lab_bad_input(tmp_path):
    for args, needle in ((["--sandbox", "nope"], "unknown scenario 'nope'"), (["--port", "0"], "out of range")):
        result = run_cli("lab", *args, "--dry-run", cwd=tmp_path)
        assert result.returncode == 2 and needle in result.stderr
