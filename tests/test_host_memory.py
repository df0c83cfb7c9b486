"""Host memory (issue 17, the runbook's "Memory Leak / OOM Killer"): real processes, real /proc, a real kernel log
where readable; the memory-leak scenario through the runner, with the ECS restart as a two-key action in moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import checks_at_or_above, finding, read_summary, wait_until

from imsnb.findings import Severity
from imsnb.host import memory as host_memory
from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.sandbox.scenarios import LeakingProcess

pytestmark = pytest.mark.servers  # leaking processes, sampled for seconds

MIB = 2**20


def wait_named(process: LeakingProcess) -> None:
    """Wait until the leaker's interpreter has started and named itself (its /proc comm), as the sample reads it."""
    comm = Path(f"/proc/{process.pid}/comm")
    wait_until(lambda: comm.read_text().strip() == process.name[:15], what=f"{process.name} to name itself")


def test_a_process_that_grows_its_memory_is_named():
    leaker = LeakingProcess("imsnb-leak-test", mib_per_s=16, cap_mib=512).start()
    try:
        wait_named(leaker)
        taken = host_memory.sample(2.0)
        row = taken.growth[taken.growth["pid"] == leaker.pid].iloc[0]
        assert row["name"] == "imsnb-leak-test" and row["growth_bytes"] >= 16 * MIB
        assert row["growth_mib_per_min"] >= 300
        found = host_memory.growth_finding(taken)
        assert found.severity >= Severity.ERROR  # at least this leaker's ~900 MiB/min (50 MiB/min is ERROR)
        named = {(r["pid"], r["name"]) for r in found.evidence}
        assert (leaker.pid, "imsnb-leak-test") in named, found.evidence
        plan = host_memory.mitigation_plan(host_memory.memory(), taken)
        assert set(plan["status"]) == {"shown, never run by imsnb"}
        assert "sudo swapon /swapfile" in plan.loc[plan["step"] == "add swap (temporary)", "command"].iloc[0]
    finally:
        leaker.close()


def test_a_quiet_sample_is_ok(tmp_path):
    quiet = host_memory.processes()
    taken = host_memory.Sample(
        1.0, datetime.now(UTC), quiet, quiet, host_memory.process_growth(quiet, quiet, 1.0), None
    )
    assert host_memory.growth_finding(taken).severity == Severity.OK


def test_memory_and_swap_against_the_runbook(tmp_path):
    real = host_memory.memory()
    assert 0 < real.available_bytes <= real.total_bytes and 0 <= real.used_ratio < 1
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:        1000000 kB\nMemFree:           20000 kB\nMemAvailable:      40000 kB\n"
        "SwapTotal:        500000 kB\nSwapFree:          150000 kB\n"
    )
    tight = host_memory.memory(meminfo)
    assert tight.used_ratio == 0.96 and tight.swap_used_ratio == 0.7
    assert host_memory.memory_finding(tight).severity == Severity.ERROR  # 96%: over 95%
    assert host_memory.swap_finding(tight).severity == Severity.WARNING  # 70%: over 50%
    assert host_memory.memory_table(tight)["used"].tolist() == ["96%", "70%"]


def test_cgroup_v2_containers_and_their_oom_kills(tmp_path):
    container = "0123456789abcdef" * 4
    group = tmp_path / "system.slice" / f"docker-{container}.scope"
    group.mkdir(parents=True)
    (tmp_path / "system.slice" / "memory.current").write_text("999999999\n")  # not a container: left out
    (group / "memory.current").write_text(str(900 * MIB))
    (group / "memory.max").write_text(str(1024 * MIB))
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    before = host_memory.containers(tmp_path)
    assert before[["container", "used_ratio", "oom_kills"]].values.tolist() == [["0123456789ab", 0.8789, 1]]
    (group / "memory.current").write_text(str(1000 * MIB))
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n")
    grown = host_memory.container_growth(before, host_memory.containers(tmp_path), 60.0)
    assert grown[["growth_mib_per_min", "new_oom_kills"]].values.tolist() == [[100.0, 2]]
    unreadable = host_memory.oom_kills(datetime.now(UTC), kmsg=str(tmp_path / "no-kmsg"), use_journal=False)
    found = host_memory.oom_finding(unreadable, grown, since=datetime.now(UTC))
    assert found.severity == Severity.ERROR and found.value == 2 and "not readable" in found.message


def test_an_unreadable_kernel_log_is_said_not_taken_for_none(tmp_path):
    report = host_memory.oom_kills(datetime.now(UTC), kmsg=str(tmp_path / "no-kmsg"), use_journal=False)
    assert not report.readable and "no-kmsg" in report.source
    found = host_memory.oom_finding(report, None, since=datetime.now(UTC))
    assert found.severity == Severity.INFO and found.message.startswith("OOM kills unknown: the kernel log is not")


def test_the_kernel_log_is_read_when_readable():
    report = host_memory.oom_kills(datetime.now(UTC) - timedelta(days=1))
    if report.readable:  # as root here: /dev/kmsg; the window's lines are searched, none expected on this box
        assert (
            report.source in ("journalctl -k", "/dev/kmsg") and list(report.events.columns) == host_memory.OOM_COLUMNS
        )
    else:
        assert report.source  # says why
    rows = host_memory.oom_victims(
        [(datetime.now(UTC), "Out of memory: Killed process 4242 (ims-backend) total-vm:812345kB, anon-rss:700000kB")],
        datetime.now(UTC) - timedelta(minutes=1),
    )
    assert [(r["pid"], r["process"]) for r in rows] == [(4242, "ims-backend")]


@pytest.fixture(scope="module")
def leaking():
    with Sandbox("memory-leak") as sandbox:
        yield sandbox


def test_memory_leak_names_the_leaking_host_process_and_plans_the_restart(leaking, use_env, tmp_path):
    use_env(leaking)
    (leaker,) = [h for h in leaking.held if isinstance(h, LeakingProcess)]
    result = run_notebook("memory_leak", {"sample_s": "5"}, incident_id="INC-MEM", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"
    assert {"host.process_growth", "aws.ecs.memory_trend"} <= checks_at_or_above(summary, "WARNING")
    growth = finding(summary, "host.process_growth")
    assert any(r["pid"] == leaker.pid and r["name"] == "ims-backend" for r in growth["evidence"]), growth
    assert {"host.memory_used", "host.swap_used", "host.oom_kills"} <= {f["check"] for f in summary["findings"]}
    (restart,) = summary["actions"]
    assert restart["action"] == "ecs_force_new_deployment" and restart["status"] == "planned"
    assert "--force-new-deployment" in restart["command"]
    assert "sudo mkswap /swapfile" in (result.folder / "report.html").read_text()


def test_both_keys_force_a_new_deployment_in_moto(leaking, use_env, tmp_path):
    use_env(leaking)
    parameters = {"sample_s": "0", "apply_actions": "True", "approver": "jane.oncall"}
    result = run_notebook("memory_leak", parameters, incident_id="INC-MEM", outputs=tmp_path, allow_actions=True)
    (restart,) = read_summary(result.folder)["actions"]
    assert restart["status"] == "applied" and "new deployment" in restart["detail"], restart
    assert restart["approver"] == "jane.oncall"


def test_imsnb_own_kernels_growing_are_left_out_and_counted(monkeypatch):
    """A suite's other run kernels grow while they import pandas: start-up, not a leak. A process with the runner's
    cell timeout in its environment is imsnb's own and is not named; a real leaker next to it still is."""
    monkeypatch.setenv("IMSNB_CELL_TIMEOUT_S", "600")
    kernel = LeakingProcess("imsnb-kernel-test", mib_per_s=16, cap_mib=512).start()
    monkeypatch.delenv("IMSNB_CELL_TIMEOUT_S")
    try:
        wait_named(kernel)
        taken = host_memory.sample(2.0)
        row = taken.growth[taken.growth["pid"] == kernel.pid].iloc[0]
        assert row["growth_bytes"] >= 16 * MIB and bool(row["own"])
        found = host_memory.growth_finding(taken)
        assert "imsnb-kernel-test" not in found.message
        assert not any(r["pid"] == kernel.pid for r in found.evidence or [])
        assert "imsnb's own kernels left out: " in found.message  # this one, and any other run's kernel
        plan = host_memory.mitigation_plan(host_memory.memory(), taken)
        assert "imsnb-kernel-test" not in " ".join(plan["command"].astype(str)), "nor named as the hog in the plan"
        leaker = LeakingProcess("imsnb-leak-next", mib_per_s=16, cap_mib=512).start()
        try:
            wait_named(leaker)
            found = host_memory.growth_finding(host_memory.sample(2.0))
            # named among the growers: another test's kernel importing pandas may grow faster in those 2 s
            assert found.severity >= Severity.ERROR
            assert any(r["pid"] == leaker.pid and r["name"] == "imsnb-leak-next" for r in found.evidence)
        finally:
            leaker.close()
    finally:
        kernel.close()
