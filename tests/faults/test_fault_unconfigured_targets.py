"""Guarantee 9: a target that is not configured never pages anyone. It is one INFO `<target>.configured` finding
("... : skipped") naming the variables to set, out of the escalation, and listed first where people read the run
("not checked: ..."), not among the findings; CRITICAL stays for a configured target that does not answer. A
notebook none of whose targets is configured is bad input before a kernel starts ("NOTHING CHECKED", exit 2): with
nothing exported, no run reads as an all-clear. AWS counts as configured only when credentials or a profile resolve.

Real runs (kernels, the session sandbox's PostgreSQL) in an environment holding only the sandbox's PG* variables,
as a PostgreSQL-only user has.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from helpers import finding, read_summary

from imsnb.cli import main
from imsnb.config import TARGET_VARIABLES

OTHER_TARGETS = ("REDIS_", "IMSNB_API_URL", "API_", "PROMETHEUS_URL", "AWS_", "IMSNB_TLS_", "DB_")


@pytest.fixture
def nothing_configured(monkeypatch, tmp_path):
    """The engineer forgot to source the environment: no target variable at all, no AWS credentials anywhere."""
    for name in list(os.environ):
        if name.startswith((*OTHER_TARGETS, "PG")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("argv", "hints"),
    [
        (["triage", "--incident", "INC-NOTHING"], "PROMETHEUS_URL, AWS_PROFILE/AWS_ACCESS_KEY_ID, DB_HOST/PGHOST"),
        (["run", "db_performance"], "DB_HOST/PGHOST, AWS_PROFILE/AWS_ACCESS_KEY_ID"),
        (["run", "certificate_expiry"], "IMSNB_TLS_ENDPOINTS or -p endpoints host:port"),
        (["suite", "scaling", "high_error_rate"], "AWS_PROFILE/AWS_ACCESS_KEY_ID"),
    ],
)
def test_nothing_configured_is_nothing_checked_never_an_all_clear(nothing_configured, tmp_path, argv, hints):
    """The issue's reproduction: with nothing exported, `imsnb triage` exited 0 with `worst INFO` and `imsnb run
    db_performance` exited 0, because AWS always counted as configured."""
    outputs = tmp_path / "outputs"
    code, out, err = run(*argv, "--outputs", str(outputs))
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    assert err.startswith("imsnb: error: NOTHING CHECKED: no target configured for "), err
    assert hints in err and "or -p environment NAME)" in err, err
    assert not outputs.exists()


@pytest.fixture
def postgres_only(degraded, monkeypatch, tmp_path):
    """The process (and the kernels it starts) sees only the sandbox's PG* variables as targets."""
    for name in list(os.environ):
        if name.startswith(OTHER_TARGETS):
            monkeypatch.delenv(name)
    for name, value in degraded.env().items():
        if name.startswith("PG"):
            monkeypatch.setenv(name, value)
    # no ~/.aws on this machine counts, and no instance metadata lookup (1 s) for credentials
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)
    assert not [n for n in TARGET_VARIABLES["redis"] + TARGET_VARIABLES["api"] if os.environ.get(n)]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def only_run_folder(outputs) -> dict:
    [folder] = [p for p in (outputs / "INC-PG-ONLY").iterdir() if p.is_dir()]
    return read_summary(folder)


def assert_skipped_not_paged(summary: dict, *configured: str) -> None:
    for check in configured:
        skipped = finding(summary, check)
        assert skipped["severity"] == "INFO", skipped
        assert "skipped" in skipped["message"], skipped
    assert not [f for f in summary["findings"] if f["severity"] == "CRITICAL"], summary["findings"]
    assert summary["escalation"] is None or "Page" not in summary["escalation"]["escalation"], summary["escalation"]


def test_health_check_as_a_postgres_only_user_does_not_page(postgres_only, tmp_path):
    outputs = tmp_path / "outputs"
    code, out, err = run("run", "health_check", "--incident", "INC-PG-ONLY", "--outputs", str(outputs))
    summary = only_run_folder(outputs)
    assert summary["status"] == "ok", summary.get("error")
    assert_skipped_not_paged(summary, "cache.configured", "api.configured")
    assert "REDIS_URL" in finding(summary, "cache.configured")["message"]
    assert "IMSNB_API_URL" in finding(summary, "api.configured")["message"]
    assert finding(summary, "postgres.reachable")["severity"] == "OK"
    assert not [f for f in summary["findings"] if f["check"] == "cache.reachable"], "a missing Redis is not down"
    assert code != 2, err
    lines = out.splitlines()  # what was not checked comes first, apart from the findings
    assert lines[0].startswith("  not checked: no ") and lines[1].startswith("  not checked: no "), out
    assert {ln.split(":")[1].strip() for ln in lines[:2]} == {"no Redis target", "no API target"}, out
    assert not re.search(r"INFO +(cache|api)\.configured", out), out


def test_triage_as_a_postgres_only_user_does_not_page(postgres_only, tmp_path):
    outputs = tmp_path / "outputs"
    code, out, err = run("triage", "--incident", "INC-PG-ONLY", "--outputs", str(outputs))
    summary = only_run_folder(outputs)
    assert summary["status"] == "ok", summary.get("error")
    assert_skipped_not_paged(summary, "cache.configured", "prometheus.configured", "aws.credentials")
    assert "Page VP" not in out, out
    assert "redis_cache" not in out.split("suggested notebooks:")[1].splitlines()[0], out
    verdict = out.split("triage: completed in ")[1].splitlines()[1:]  # after what happened: what was not checked
    skipped = [ln for ln in verdict if ln.startswith("  not checked: ")]
    assert verdict[: len(skipped)] == skipped and len(skipped) == 3, out
    assert any("AWS has no" in ln for ln in skipped) and any("REDIS_URL" in ln for ln in skipped), out
    first = "triage: reading PostgreSQL over the last 1h ..."  # only what it can read: no Redis to sample
    assert out.splitlines()[0] == first, out


def test_a_notebook_whose_only_target_is_not_configured_is_bad_input(postgres_only, tmp_path):
    outputs = tmp_path / "outputs"
    code, out, err = run("run", "redis_cache", "--outputs", str(outputs))
    assert code == 2 and err.count("\n") == 1, err
    assert "NOTHING CHECKED: no target configured for redis_cache (set REDIS_URL/REDIS_HOST, or -p" in err, err
    assert not outputs.exists()


def test_a_configured_redis_that_does_not_answer_is_still_critical(postgres_only, tmp_path, monkeypatch):
    from injectors import closed_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    outputs = tmp_path / "outputs"
    code, out, err = run("run", "health_check", "--incident", "INC-PG-ONLY", "--outputs", str(outputs))
    summary = only_run_folder(outputs)
    assert finding(summary, "cache.reachable")["severity"] == "CRITICAL"
    assert summary["escalation"]["escalation"] == "Page VP" and code == 1


def test_suite_names_it_bad_input_and_all_leaves_it_out(postgres_only, tmp_path):
    from imsnb.runs.suite import all_notebook_names, without_targets

    outputs = tmp_path / "outputs"
    code, out, err = run("suite", "health_check", "redis_cache", "--outputs", str(outputs))
    assert code == 2 and "REDIS_URL" in err and out == "", (out, err)
    assert not outputs.exists()
    left_out = ["cache_cluster_upgrade", "certificate_expiry", "high_error_rate", "redis_cache", "scaling"]
    assert sorted(without_targets(all_notebook_names())) == left_out  # --all runs the rest, with a note
