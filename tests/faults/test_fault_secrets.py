"""Guarantee 6: with passwords on PostgreSQL and Redis and AWS keys in the environment, no secret reaches any byte
of any file of any run folder of any notebook; query text in artifacts has its literals masked."""

from __future__ import annotations

import base64
import threading
import time

import psycopg
import pytest
from helpers import read_summary
from secret_scan import assert_no_secrets, find_secrets

from imsnb import config
from imsnb.notebooks import list_notebooks
from imsnb.runner import run_notebook

EMAIL = "leak.check@example.org"
LITERAL_QUERY = f"SELECT pg_sleep(120), count(*) FROM orders WHERE email = '{EMAIL}'"  # a literal, on purpose
AWKWARD = "Zq\"8<k>&'p\\w%4 tok"


def test_the_scan_finds_secrets_in_every_encoding():
    secret = "s3cr3t-Value_42xyz"
    for text in (
        f"x{secret}y".encode(),
        base64.b64encode(b"\x89PNG..." + secret.encode() + b"...tail"),
        base64.b64encode(b"ab" + secret.encode() + b"c"),
        base64.urlsafe_b64encode(b"a" + secret.encode()),
        secret.encode().hex().encode(),
    ):
        assert find_secrets([text], [secret]), text
    assert find_secrets([b"nothing here"], [secret]) == []


@pytest.fixture
def literal_in_flight(degraded):
    """A statement carrying an email literal, running (so pg_stat_activity shows its text) during the runs."""
    conn = degraded.postgres.connect("ims-report", autocommit=True)
    worker = threading.Thread(target=lambda: _quietly(conn, LITERAL_QUERY), daemon=True)
    worker.start()
    with degraded.postgres.admin("ims") as admin:
        for _ in range(100):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s", (f"%{EMAIL}%",)).fetchone():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the literal statement never started")
    yield
    conn.cancel_safe(timeout=5)
    worker.join(timeout=10)
    conn.close()


def _quietly(conn: psycopg.Connection, query: str) -> None:
    try:
        conn.execute(query)
    except psycopg.Error:
        pass


def test_no_secret_in_any_run_folder_of_any_notebook(degraded, literal_in_flight, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAFANA_TOKEN", AWKWARD)  # a secret with every character that has an escaped spelling
    monkeypatch.setenv("REDIS_URL", f"redis://:{degraded.redis.password}@127.0.0.1:{degraded.redis.port}/0")
    secrets = set(config.secret_values()) | {degraded.postgres.password, degraded.redis.password}
    secrets |= {degraded.aws.secret_key, "AKIAIMSNBSANDBOX0000", AWKWARD}
    folders = []
    for info in list_notebooks():
        result = run_notebook(info.name, {"window": "30m"}, incident_id="INC-SECRETS", outputs=tmp_path)
        assert read_summary(result.folder)["status"] == "ok", (info.name, result.summary.get("error"))
        folders.append(result.folder)
    assert len(folders) == len(list_notebooks()) >= 11
    scanned = assert_no_secrets(folders, secrets)
    assert scanned > 1_000_000  # every notebook, report and summary, charts included

    db_run = next(f for f in folders if f.name.endswith("-db_performance"))
    every = b"".join(p.read_bytes() for p in db_run.iterdir())
    assert EMAIL.encode() not in b"".join(p.read_bytes() for f in folders for p in f.iterdir())
    assert b"WHERE email = ?" in every  # the statement is shown, its literal replaced by a placeholder

    # The same runs, archived to S3 (the moto server): every byte of every uploaded object is scanned too.
    from imsnb import archive

    s3 = degraded.aws.client("s3")
    s3.create_bucket(Bucket="ims-secret-scan")
    keys = archive.upload("s3://ims-secret-scan/runs", folders, tmp_path / "INC-SECRETS")
    objects = [s3.get_object(Bucket="ims-secret-scan", Key=key)["Body"].read() for key in keys]
    assert len(objects) == len(keys) >= 3 * len(folders)
    assert assert_no_secrets(objects, secrets) == sum(len(o) for o in objects)
