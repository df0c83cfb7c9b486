"""imsnb.host (the runbook's "High Disk Usage" and "Log Rotation") against real directories and files, real /proc
for memory and processes, and the judges of the catalogue's host.* checks at their boundaries (values built here).
A leaking child process and the memory_leak notebook are in test_host_memory.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from imsnb import host
from imsnb.findings import Severity
from imsnb.host import memory as host_memory

MIB = 2**20
DAY = 86400


def _write(path, size: int, *, age_days: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    if age_days:
        then = time.time() - age_days * DAY
        os.utime(path, (then, then))
    return path


# ---------------------------------------------------------------- disk: df, du, old logs, rotation


def test_disk_usage_is_the_filesystems_own_numbers(tmp_path):
    usage = host.disk_usage([str(tmp_path), "/"])
    assert usage["path"].tolist() == [str(tmp_path), "/"]
    fs = os.statvfs(tmp_path)
    row = usage.iloc[0]
    assert row["total_bytes"] == fs.f_blocks * fs.f_frsize
    assert row["used_bytes"] + row["free_bytes"] <= row["total_bytes"]  # root's reserved blocks are neither
    assert row["used_ratio"] == round(row["used_bytes"] / (row["used_bytes"] + row["free_bytes"]), 4)
    assert 0 < row["used_ratio"] < 1
    assert host.disk_usage()["path"].tolist() == ["/"]


def test_disk_used_reads_as_df_shows_it(tmp_path):
    """The on-call engineer compares with `df -h`: the ratio is df's Use% (used / (used + available)), not used over
    the size, which reads lower where blocks are reserved (here the difference was 10% against df's 26%)."""
    import math
    import subprocess

    for path in ("/", str(tmp_path)):
        shown = subprocess.run(["df", "--output=pcent", path], capture_output=True, text=True, check=True).stdout
        df_percent = int(shown.split()[-1].rstrip("%"))
        ratio = host.disk_usage([path])["used_ratio"].iloc[0]
        assert math.ceil(ratio * 100) in (df_percent, df_percent + 1), (path, ratio, df_percent)  # df rounds up


def test_largest_directories_counts_files_on_one_filesystem_without_following_links(tmp_path):
    for i in range(3):
        _write(tmp_path / "small" / f"f{i}", 64 * 1024)
    _write(tmp_path / "big" / "deep" / "deeper" / "blob", MIB)
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "a-file-at-the-top", MIB)  # not a directory: not listed
    (tmp_path / "link-to-big").symlink_to(tmp_path / "big")  # a link to a directory: not listed, not followed
    (tmp_path / "small" / "link-to-blob").symlink_to(tmp_path / "big" / "deep" / "deeper" / "blob")

    found = host.largest_directories(str(tmp_path))
    assert found["path"].tolist() == [str(tmp_path / d) for d in ("big", "small", "empty")]
    assert found["files"].tolist() == [1, 3, 0]  # the symlink in small/ is not a file
    big, small, empty = found["bytes"].tolist()
    assert big >= MIB and 3 * 64 * 1024 <= small < MIB and empty == 0
    assert found["complete"].tolist() == [True, True, True]
    assert host.largest_directories(str(tmp_path), top=1)["path"].tolist() == [str(tmp_path / "big")]


def test_largest_directories_says_where_its_budget_ran_out(tmp_path):
    for name in ("a", "b"):
        for i in range(3):
            _write(tmp_path / name / f"f{i}", 10)
    bounded = host.largest_directories(str(tmp_path), max_entries=3)  # a's three files use the whole budget
    assert bounded[["path", "files", "complete"]].values.tolist() == [
        [str(tmp_path / "a"), 3, True],
        [str(tmp_path / "b"), 0, False],  # a lower bound, said so
    ]
    late = host.largest_directories(str(tmp_path), deadline_s=-1)
    assert late[["bytes", "files", "complete"]].values.tolist() == [[0, 0, False], [0, 0, False]]


def test_old_files_are_the_matching_ones_past_the_age_oldest_first(tmp_path):
    _write(tmp_path / "app.log", 100, age_days=40)
    _write(tmp_path / "fresh.log", 100, age_days=10)
    _write(tmp_path / "notes.txt", 100, age_days=400)  # old, but not *.log
    _write(tmp_path / "nested" / "older.log", 300, age_days=100)

    old = host.old_files(str(tmp_path), older_than_days=30)
    assert old["path"].tolist() == [str(tmp_path / "nested" / "older.log"), str(tmp_path / "app.log")]
    assert old[["bytes", "age_days"]].values.tolist() == [[300, 100.0], [100, 40.0]]
    assert host.old_files(str(tmp_path), older_than_days=30, limit=1).shape[0] == 1
    assert host.old_files(str(tmp_path), pattern="*.txt", older_than_days=30)["age_days"].tolist() == [400.0]
    assert host.old_files(str(tmp_path), older_than_days=500).empty


def test_log_rotation_counts_the_rotated_copies_beside_each_log(tmp_path):
    for name in ("app.log", "app.log.1", "app.log.2.gz", "app.log.bak", "web.log", "web.log-20261101", "db.log"):
        _write(tmp_path / name, 1000 if name == "db.log" else 10)
    logs = host.log_rotation(str(tmp_path))
    copies = dict(zip(logs["log"].map(os.path.basename), logs["rotated_copies"], strict=True))
    assert copies == {"app.log": 2, "web.log": 1, "db.log": 0}  # .bak is not a rotation
    assert logs.iloc[0]["log"] == str(tmp_path / "db.log") and logs.iloc[0]["bytes"] == 1000  # largest first


def test_a_log_at_the_size_limit_without_rotation_is_a_warning(tmp_path):
    _write(tmp_path / "at-limit.log", 1000)
    _write(tmp_path / "under.log", 999)
    _write(tmp_path / "rotated.log", 5000)
    _write(tmp_path / "rotated.log.1", 10)
    found = host.rotation_finding(host.log_rotation(str(tmp_path)), min_bytes=1000)
    assert (found.check, found.severity, found.value, found.threshold, found.unit) == (
        "host.log_rotation",
        Severity.WARNING,
        1,
        1000,
        "bytes",
    )
    assert [row["log"] for row in found.evidence] == [str(tmp_path / "at-limit.log")]
    ok = host.rotation_finding(host.log_rotation(str(tmp_path)), min_bytes=1001)
    assert (ok.severity, ok.value) == (Severity.OK, 0)
    assert host.rotation_finding(host.log_rotation(str(tmp_path / "none-here"))).severity == Severity.OK


def test_old_logs_are_information_with_their_size(tmp_path):
    _write(tmp_path / "a.log", MIB, age_days=31)
    _write(tmp_path / "b.log", MIB, age_days=60)
    found = host.old_files_finding(host.old_files(str(tmp_path), older_than_days=30), 30)
    assert (found.check, found.severity, found.value, found.threshold, found.unit) == (
        "host.old_logs",
        Severity.INFO,
        2,
        30,
        "days",
    )
    assert "2 log file(s) older than 30 days, 2.0 MiB" in found.message
    none = host.old_files_finding(host.old_files(str(tmp_path), older_than_days=90), 90)
    assert (none.severity, none.value, none.threshold) == (Severity.OK, 0, 90)


@pytest.mark.parametrize(
    ("used_ratio", "severity"),
    [
        (0.8499, Severity.OK),
        (0.85, Severity.WARNING),  # the runbook's "Disk usage > 85%"
        (0.8999, Severity.WARNING),
        (0.90, Severity.ERROR),
        (0.9499, Severity.ERROR),
        (0.95, Severity.CRITICAL),
    ],
)
def test_disk_used_at_the_catalogues_levels(used_ratio, severity):
    total = 100 * 2**30
    usage = pd.DataFrame(
        [{"path": "/data", "total_bytes": total, "used_bytes": int(total * used_ratio), "used_ratio": used_ratio}]
    ).assign(free_bytes=lambda f: f["total_bytes"] - f["used_bytes"])
    (found,) = host.disk_findings(usage)
    assert (found.check, found.component, found.severity) == ("host.disk_used", "host", severity)
    assert (found.value, found.threshold, found.unit) == (used_ratio, 0.85, "ratio")
    assert found.message.startswith("/data: ")


def test_disk_used_follows_a_threshold_override(monkeypatch, tmp_path):
    monkeypatch.setenv("IMSNB_THRESHOLD_HOST_DISK_USED", "0.0001")
    monkeypatch.setenv("IMSNB_THRESHOLD_HOST_DISK_USED_ERROR", "0.99999")
    monkeypatch.setenv("IMSNB_THRESHOLD_HOST_DISK_USED_CRITICAL", "1")
    (found,) = host.disk_findings(host.disk_usage([str(tmp_path)]))
    assert found.severity == Severity.WARNING and found.threshold == 0.0001  # this real disk is more than 0.01% used


def test_the_cleanup_plan_names_what_was_found_and_runs_nothing(tmp_path):
    _write(tmp_path / "old.log", MIB, age_days=45)
    _write(tmp_path / "big.log", 10)
    old, logs = host.old_files(str(tmp_path)), host.log_rotation(str(tmp_path))
    plan = host.cleanup_plan(old, logs, archive_uri="s3://bucket/x/")
    assert plan["step"].tolist() == ["delete old logs", "rotate logs", "archive backups"]
    assert plan["found"].tolist()[:2] == ["1 file(s), 1.0 MiB", "2 log(s) without rotated copies"]
    assert plan["command"].iloc[2] == "aws s3 sync /backups/ s3://bucket/x/"
    assert set(plan["status"]) == {"planned, not executed"}
    assert (tmp_path / "old.log").exists() and (tmp_path / "big.log").exists()
    empty = host.cleanup_plan(host.old_files(str(tmp_path / "x")), host.log_rotation(str(tmp_path / "x")))
    assert empty["step"].tolist() == ["archive backups"]


# ---------------------------------------------------------------- memory: real /proc, the catalogue's levels


def test_memory_reads_the_kernels_totals():
    mem = host_memory.memory()
    assert mem.total_bytes == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    swaps = [line.split() for line in Path("/proc/swaps").read_text().splitlines()[1:] if line.strip()]
    assert mem.swap_total_bytes == sum(int(parts[2]) * 1024 for parts in swaps)
    assert mem.used_bytes == mem.total_bytes - mem.available_bytes and 0 < mem.used_ratio < 1
    assert (mem.swap_used_ratio is None) == (mem.swap_total_bytes == 0)


def _memory(used_ratio: float, swap_used_ratio: float | None = None) -> host_memory.HostMemory:
    total = 16 * 2**30
    swap_total = 0 if swap_used_ratio is None else 4 * 2**30
    return host_memory.HostMemory(
        total_bytes=total,
        available_bytes=int(total * (1 - used_ratio)),
        used_bytes=int(total * used_ratio),
        used_ratio=used_ratio,
        swap_total_bytes=swap_total,
        swap_used_bytes=int(swap_total * (swap_used_ratio or 0)),
        swap_used_ratio=swap_used_ratio,
    )


@pytest.mark.parametrize(
    ("ratio", "memory_severity", "swap_severity"),
    [
        (0.4999, Severity.OK, Severity.OK),
        (0.50, Severity.OK, Severity.WARNING),  # swap: any real use of it is pressure
        (0.7999, Severity.OK, Severity.WARNING),
        (0.80, Severity.OK, Severity.ERROR),
        (0.8999, Severity.OK, Severity.ERROR),
        (0.90, Severity.WARNING, Severity.ERROR),  # the runbook's "Memory: < 90% used"
        (0.95, Severity.ERROR, Severity.CRITICAL),
        (0.9799, Severity.ERROR, Severity.CRITICAL),
        (0.98, Severity.CRITICAL, Severity.CRITICAL),
    ],
)
def test_memory_and_swap_at_the_catalogues_levels(ratio, memory_severity, swap_severity):
    found = host_memory.memory_finding(_memory(ratio))
    assert (found.check, found.severity, found.value, found.threshold, found.unit) == (
        "host.memory_used",
        memory_severity,
        ratio,
        0.90,
        "ratio",
    )
    swap = host_memory.swap_finding(_memory(0.5, ratio))
    assert (swap.check, swap.severity, swap.value, swap.threshold) == ("host.swap_used", swap_severity, ratio, 0.50)


def test_no_swap_is_ok_and_says_so():
    found = host_memory.swap_finding(_memory(0.5, None))
    assert (found.severity, found.value, found.threshold, found.unit) == (Severity.OK, None, 0.50, "ratio")
    assert found.message.startswith("no swap configured")


# ---------------------------------------------------------------- processes: a real child, growth at the levels


def test_processes_lists_a_real_child_with_its_secret_arguments_masked():
    program = "print(1, flush=True); input()"  # short: the command shown is cut at 120 characters
    child = subprocess.Popen(
        [sys.executable, "-c", program, "--token=abc123", "a://u:pw@b"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "1\n"  # started and now asleep: its resident memory stays put
        table = host_memory.processes()
        (row,) = table[table["pid"] == child.pid].to_dict(orient="records")
        proc = Path(f"/proc/{child.pid}")
        assert row["name"] == (proc / "comm").read_text().strip()
        assert row["rss_bytes"] == int((proc / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        assert row["started"] == int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        assert "--token=********" in row["command"] and "abc123" not in row["command"]
        assert "a://u:********@b" in row["command"] and "pw@" not in row["command"]
        assert table["rss_bytes"].is_monotonic_decreasing
        top = host_memory.top_processes(table, 3)
        assert len(top) == 3 and top["rss_mib"].tolist() == (table["rss_bytes"].head(3) / MIB).round(1).tolist()
    finally:
        child.kill()
        child.wait()
    assert child.pid not in host_memory.processes()["pid"].tolist()  # gone once reaped


def _sample(rss_before: int, rss_after: int, sample_s: float, *, started_after: int = 7) -> host_memory.Sample:
    before = pd.DataFrame([{"pid": 42, "name": "ims-backend", "command": "ims-backend", "rss_bytes": rss_before}])
    after = before.assign(rss_bytes=rss_after, started=started_after)
    before = before.assign(started=7)
    growth = host_memory.process_growth(before, after, sample_s)
    return host_memory.Sample(sample_s, datetime.now(UTC), before, after, growth, pd.DataFrame())


@pytest.mark.parametrize(
    ("grew_mib", "severity"),
    [
        (9.99, Severity.OK),  # counted (over 8 MiB in the sample) but under 10 MiB/min
        (10.0, Severity.WARNING),
        (49.99, Severity.WARNING),
        (50.0, Severity.ERROR),
        (499.99, Severity.ERROR),
        (500.0, Severity.CRITICAL),
    ],
)
def test_process_growth_at_the_catalogues_levels(grew_mib, severity):
    taken = _sample(100 * MIB, 100 * MIB + int(grew_mib * MIB), 60.0)  # a one-minute sample: MiB grown = MiB/min
    found = host_memory.growth_finding(taken)
    assert (found.check, found.severity, found.value, found.threshold, found.unit) == (
        "host.process_growth",
        severity,
        grew_mib,
        10.0,
        "MiB/min",
    )
    assert found.message.startswith("ims-backend (pid 42) grew 100 → ")
    assert [row["pid"] for row in found.evidence] == [42]


def test_growth_under_the_noise_floor_or_of_a_reused_pid_is_not_a_leak():
    fast_but_small = _sample(100 * MIB, 100 * MIB + 8 * MIB - 1, 6.0)  # ~80 MiB/min, but under 8 MiB in all
    assert fast_but_small.growth["growth_mib_per_min"].iloc[0] == 80.0
    found = host_memory.growth_finding(fast_but_small)
    assert (found.severity, found.value, found.threshold) == (Severity.OK, 0.0, 10.0)
    assert host_memory.growth_finding(_sample(100 * MIB, 100 * MIB + 8 * MIB, 6.0)).severity == Severity.ERROR
    reused = _sample(100 * MIB, 900 * MIB, 6.0, started_after=8)  # another process under the same pid
    assert reused.growth.empty and host_memory.growth_finding(reused).severity == Severity.OK


# ---------------------------------------------------------------- OOM kills at the levels


@pytest.mark.parametrize(
    ("kills", "severity"), [(0, Severity.OK), (1, Severity.ERROR), (4, Severity.ERROR), (5, Severity.CRITICAL)]
)
def test_oom_kills_at_the_catalogues_levels(kills, severity):
    since = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    lines = [
        (
            datetime(2026, 11, 30, 1, 5, tzinfo=UTC),
            f"Out of memory: Killed process {4000 + i} (ims-backend) anon-rss:1kB",
        )
        for i in range(kills)
    ]
    lines.append((datetime(2026, 11, 30, 0, 59, tzinfo=UTC), "Out of memory: Killed process 1 (before-the-window)"))
    events = pd.DataFrame(host_memory.oom_victims(lines, since), columns=host_memory.OOM_COLUMNS)
    report = host_memory.OomReport(True, "/dev/kmsg", events, since_boot=kills + 1)
    found = host_memory.oom_finding(report, None, since=since)
    assert (found.check, found.severity, found.value, found.threshold, found.unit) == (
        "host.oom_kills",
        severity,
        kills,
        1.0,
        "kills",
    )
    if kills:
        assert found.message.startswith(f"{kills} OOM kill(s) since 2026-11-30 01:00 UTC (/dev/kmsg): ims-backend")
    else:
        assert found.message == "no OOM kill in the kernel log (/dev/kmsg) since 2026-11-30 01:00 UTC"


def test_an_unreadable_kernel_log_is_information_not_a_clean_bill():
    report = host_memory.OomReport(False, "/dev/kmsg: Permission denied", pd.DataFrame(), since_boot=3)
    found = host_memory.oom_finding(report, None, since=datetime.now(UTC))
    assert (found.severity, found.value, found.threshold, found.unit) == (Severity.INFO, None, 1.0, "kills")
    assert "not readable (/dev/kmsg: Permission denied); the kernel counts 3 OOM kill(s) since boot" in found.message


def test_the_budgets_stop_the_whole_walk_and_inside_one_huge_directory(tmp_path, monkeypatch):
    """old_files stops walking once its budget is spent (not only the directory it was in), and the size walk
    stops inside one directory holding more entries than the budget."""
    import os
    import time

    old = time.time() - 90 * 86400
    for d in range(30):
        folder = tmp_path / "logs" / f"d{d:02}"
        folder.mkdir(parents=True)
        for i in range(5):
            path = folder / f"app{i}.log"
            path.write_text("x")
            os.utime(path, (old, old))
    listed = []
    real_walk = os.walk

    def counted_walk(*args, **kwargs):
        for step in real_walk(*args, **kwargs):
            listed.append(step[0])
            yield step

    monkeypatch.setattr(host.disk.os, "walk", counted_walk)
    found = host.old_files(str(tmp_path / "logs"), older_than_days=30, max_entries=12)
    monkeypatch.undo()
    assert len(found) == 12, "exactly the budget's entries"
    assert len(listed) <= 5, f"the walk ended with the budget, not after listing all 31 folders: {len(listed)}"
    big = tmp_path / "big" / "one"
    big.mkdir(parents=True)
    for i in range(3000):
        (big / f"f{i}").write_bytes(b"")
    sizes = host.largest_directories(str(tmp_path / "big"), max_entries=500)
    row = sizes.iloc[0]
    assert not row["complete"] and row["files"] <= 500
