"""Vertical scaling (issue 17.4): CPU, FreeableMemory, FreeStorageSpace and IOPS read together from moto's
CloudWatch, the bottleneck named, and the plan sized from it (more vCPU, more RAM, or storage on its own)."""

from __future__ import annotations

import pytest
from helpers import finding, read_summary

from imsnb import actions
from imsnb.aws import Aws, bottleneck
from imsnb.runs.execute import run_notebook
from imsnb.window import resolve_window

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}


def test_the_step_follows_the_resource():
    assert bottleneck.bigger_class("db.t3.micro", "memory") == "db.t3.small"  # 1 → 2 GiB, same 2 vCPU
    assert bottleneck.bigger_class("db.t3.micro", "cpu") == "db.t3.xlarge"  # the first t3 with more than 2 vCPU
    assert bottleneck.bigger_class("db.r5.large", "cpu") == "db.r5.xlarge"
    assert (
        bottleneck.bigger_class("db.m5.24xlarge", "cpu") is None and bottleneck.bigger_class("db.x9.odd", "cpu") is None
    )


def test_db_degradation_is_cpu_bound_and_the_plan_adds_vcpu(degraded, use_env):
    use_env(degraded)
    calls: list[str] = []
    aws = Aws("tests", on_call=calls.append)
    cap = bottleneck.capacity("ims-postgres-db", aws=aws)
    assert (cap["class"], cap["vcpu"], cap["ram_gib"], cap["allocated_gib"]) == ("db.t3.micro", 2, 1, 100)
    calls.clear()
    span = resolve_window("1h")
    load = bottleneck.load("ims-postgres-db", span, aws=aws)
    assert calls == ["cloudwatch:GetMetricData"], "the four resources are one call"
    table = bottleneck.pressures(load, cap)
    assert bottleneck.bottleneck(table) == "cpu"
    cpu = table.set_index("resource").loc["cpu"]
    assert cpu["used_ratio"] >= 0.9 and cpu["severity"] in ("ERROR", "CRITICAL")
    assert table.set_index("resource").loc["memory", "severity"] == "OK"
    found = bottleneck.bottleneck_finding(table, "ims-postgres-db")
    assert found.value == "cpu" and "cpu is the bottleneck" in found.message
    for judged in (found, bottleneck.memory_finding(table, "ims-postgres-db")):  # the span CloudWatch was asked for
        assert (judged.period.start, judged.period.end, judged.period.basis) == (span.start, span.end, "window")
    (plan,) = actions.bottleneck_actions(table, cap, aws=aws)
    assert plan.action == "rds_resize" and "db.t3.xlarge" in plan.command and "4 vCPU" in plan.reason


def test_scaling_names_memory_and_plans_more_ram(private_sandbox, use_env, tmp_path):
    sandbox = private_sandbox("scaling")
    use_env(sandbox)
    result = run_notebook("scaling", {}, incident_id="INC-S", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert finding(summary, "aws.rds.bottleneck")["value"] == "memory"
    assert finding(summary, "aws.rds.memory_used")["severity"] in ("ERROR", "CRITICAL")  # ~96-98% of 1 GiB used
    assert finding(summary, "aws.rds.cpu")["severity"] == "OK"
    resize = [a for a in summary["actions"] if a["action"].startswith("rds_")]
    assert [(a["action"], a["status"]) for a in resize] == [("rds_resize", "planned")]
    assert "--db-instance-class db.t3.small" in resize[0]["command"] and "memory" in resize[0]["reason"]


def test_disk_pressure_plans_storage_on_its_own_and_both_keys_apply_it(private_sandbox, use_env, tmp_path):
    sandbox = private_sandbox("disk-pressure")
    use_env(sandbox)
    result = run_notebook("scaling", KEYS, incident_id="INC-S", outputs=tmp_path, allow_actions=True)
    summary = read_summary(result.folder)
    storage = sandbox.aws.client("rds").describe_db_instances()["DBInstances"][0]
    assert finding(summary, "aws.rds.bottleneck")["value"] == "storage"
    (step,) = [a for a in summary["actions"] if a["action"].startswith("rds_")]
    assert step["action"] == "rds_storage_increase" and step["status"] == "applied", step
    assert "--allocated-storage 150" in step["command"]  # ~88 GiB used of 100: 40% free after
    assert storage["AllocatedStorage"] == 150 and storage["DBInstanceClass"] == "db.t3.micro"


@pytest.mark.parametrize("resource", ["storage", "iops"])
def test_storage_steps_are_at_least_ten_percent(resource):
    table = bottleneck.pressures(
        __import__("pandas").DataFrame(columns=["timestamp", "metric", "dimension", "value"]),
        {"class": "db.t3.micro", "ram_gib": 1, "allocated_gib": 100, "storage_type": "gp2", "baseline_iops": 300},
    )
    table.loc[table["resource"] == resource, ["used_ratio", "seen"]] = [0.81, 250.0]
    step = bottleneck.storage_step(table, {"allocated_gib": 100, "storage_type": "gp2"}, resource)
    assert step == {"allocated_gib": 140} if resource == "storage" else step == {"allocated_gib": 140}
