"""Each practice scenario tells one story across its sources: what triage flags (Prometheus, CloudWatch, the
counters) the notebooks it suggests confirm from their own sources (logs, the endpoint, the statements), as on a real
page. The issue's case: in db-degradation triage flagged 2% 5xx and a p95 of 2.3 s from Prometheus and sent the
engineer to high_error_rate and api_timeout, which found 0 error lines and an endpoint p95 of 2 ms (the sandbox's API
now waits on its database and logs the timeouts: imsnb/sandbox/scenarios.py, APP_LOGS).

Every scenario is run as `imsnb triage --run-suggested` would: triage, then its suggestions under the same incident.
A scenario whose problem lies outside the runbook's key metrics (a certificate, ECS tasks, backups, ...) must flag
nothing in triage, and its own notebook must find its problem on the same sandbox: triage's silence is then the
runbook's blind spot, said here per scenario, not a broken story. The docs tell each story (docs/sandbox.md, "The
stories").

Time: every scenario, in one process, 2 follow-ups at a time: 10 min on a 2-core machine shared with other test
runs (2026-12-03; 2.5 min of it CPU, the rest sampling windows and sandbox starts), 35-70 s a scenario.
"""

from __future__ import annotations

import pytest
from helpers import ORDER

from imsnb.findings import Finding
from imsnb.runs.execute import run_notebook
from imsnb.runs.followups import run_suggested, run_triage
from imsnb.sandbox import SCENARIO_NAMES, Sandbox
from imsnb.triage import NOTEBOOK_FOR_CHECK

# What confirms a check triage flagged, in the notebook that follows it up (NOTEBOOK_FOR_CHECK): the same check
# unless the follow-up reads another source for it. Reachability of Prometheus or AWS is no part of a story.
CONFIRMED_BY = {
    "api.error_rate": ("aws.logs.error_rate", "api.health"),  # the error lines in the logs, or the health endpoint
    "api.p95_latency": ("api.response_time",),  # the endpoint's own response times
    "api.request_rate": ("aws.ecs.",),  # the service's capacity
}
NOT_A_STORY = ("prometheus.reachable", "aws.reachable")

# What triage must flag in each scenario whose story is in the runbook's key metrics (at WARNING or worse), so a
# scenario that stopped telling its story fails here rather than passing with nothing to confirm.
FLAGS = {
    "db-degradation": {
        "api.error_rate",
        "api.p95_latency",
        "postgres.connections_used",
    },  # RDS CPU: 20 min before start
    "cache-pressure": {"cache.memory_used", "cache.evictions"},
    "api-degraded": {"api.error_rate", "api.p95_latency"},
    "error-spike": {"api.error_rate"},
    "disk-pressure": {"aws.rds.free_storage"},
    "cache-upgrade": {"cache.memory_used", "cache.evictions"},  # the node of the cluster CloudWatch says is full
}
# Scenarios where nothing is wrong: triage flags nothing and suggests nothing.
NOTHING_WRONG = {"healthy", "quiet"}
# Scenarios triage cannot see, why, and the notebook (its parameters from the sandbox) and check that find them.
BLIND = {
    "cert-expiring": ("certificates are no key metric", "certificate_expiry", "tls.days_to_expiry"),
    "scaling": (
        "ECS tasks and RDS memory are no key metric (the request rate, which is, is steady)",
        "scaling",
        "aws.ecs.running_vs_desired",
    ),
    "memory-leak": ("the service's memory is no key metric", "memory_leak", "aws.ecs.memory_trend"),
    "stale-backup": ("backups are no key metric", "backup_verification", "aws.rds.snapshot_age"),
    "cache-upgrade": (  # triage sees the node full and evicting (FLAGS); the cluster's own metrics are the upgrade's
        "ElastiCache's own metrics are no key metric",
        "cache_cluster_upgrade",
        "aws.elasticache.memory_used",
    ),
}
# What a follow-up must find in AWS, where the scenario seeds it (the other seeded AWS problems are BLIND's).
AWS_FOUND = {
    "db-degradation": ("db_performance", "aws.rds.cpu"),
    "error-spike": ("high_error_rate", "aws.logs.error_rate"),
    "disk-pressure": ("disk_usage", "aws.rds.free_storage"),
}
# Follow-ups that must plan no rollback: the error lines name the database and no deployment preceded them.
NO_ROLLBACK = {"db-degradation", "error-spike", "api-degraded"}


def test_every_scenario_has_a_story_here():
    assert sorted(FLAGS.keys() | NOTHING_WRONG | BLIND.keys()) == sorted(SCENARIO_NAMES)


def follow_up_of(check: str) -> str | None:
    return next((notebook for prefix, notebook in NOTEBOOK_FOR_CHECK if check.startswith(prefix)), None)


def at_least_warning(findings: list[dict]) -> list[dict]:
    return [f for f in findings if ORDER.index(f["severity"]) >= ORDER.index("WARNING")]


def unconfirmed(flagged: list[Finding], follow_ups: dict[str, dict]) -> list[str]:
    """What triage flagged at WARNING or worse that the notebook it pointed to did not find at WARNING or worse."""
    missing = []
    for finding in flagged:
        notebook = follow_up_of(finding.check)
        if notebook is None or finding.check in NOT_A_STORY:
            continue
        summary = follow_ups.get(notebook)
        if summary is None:
            missing.append(f"{finding.check} ({finding.severity.name}): {notebook} did not run")
            continue
        confirming = CONFIRMED_BY.get(finding.check, (finding.check,))
        found = [f for f in at_least_warning(summary["findings"]) if f["check"].startswith(confirming)]
        if not found:
            seen = "; ".join(f"{f['check']} {f['severity']}: {f['message'][:90]}" for f in summary["findings"]
                             if f["check"].startswith(confirming)) or "nothing"  # fmt: skip
            missing.append(
                f"triage {finding.check} {finding.severity.name} ({finding.message[:90]}) but {notebook} found {seen}"
            )
    return missing


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_the_follow_ups_confirm_what_triage_flagged(scenario, degraded, use_env, tmp_path):
    sandbox = degraded
    if scenario != "db-degradation":  # the session's sandbox is that one, already exported
        sandbox = Sandbox(scenario).start()
        use_env(sandbox)
    try:
        triage = run_triage({"window": "30m"}, incident_id=f"INC-{scenario}", outputs=tmp_path)
        assert triage.result.status == "ok", triage.result.summary.get("error")
        followed = run_suggested(triage, {"window": "30m"}, jobs=2, outputs=tmp_path) if triage.suggested else []
        own = None
        if scenario in BLIND:
            _, notebook, _ = BLIND[scenario]
            params = {"new_redis": sandbox.extra_env["IMSNB_SANDBOX_NEW_REDIS"]} if scenario == "cache-upgrade" else {}
            own = run_notebook(notebook, params, incident_id=f"INC-{scenario}", outputs=tmp_path)
    finally:
        if sandbox is not degraded:
            sandbox.stop()
    findings = [Finding.from_dict(f) for f in triage.result.summary["findings"]]
    flagged = [f for f in findings if ORDER.index(f.severity.name) >= ORDER.index("WARNING")]
    story = {f.check for f in flagged if f.check not in NOT_A_STORY}
    follow_ups = {r.summary["notebook"]: r.summary for r in followed}
    assert {r.status for r in followed} <= {"ok"}, [r.summary.get("error") for r in followed]

    if scenario in FLAGS:
        assert FLAGS[scenario] <= story, f"{scenario}: triage flagged {sorted(story)}"
        problems = unconfirmed(flagged, follow_ups)
        assert not problems, f"{scenario} contradicts itself:\n" + "\n".join(problems)
    else:  # nothing wrong, or outside the key metrics: triage's silence is the truth, and suggests nothing
        assert not story and not triage.suggested, f"{scenario}: triage flagged {sorted(story)}"
    if scenario in BLIND:
        why, notebook, check = BLIND[scenario]
        assert own is not None and own.status == "ok", own.summary.get("error") if own else None
        found = at_least_warning(own.summary["findings"])
        seen = [f"{f['check']} {f['severity']}: {f['message'][:150]}" for f in found]
        assert check in {f["check"] for f in found}, (
            f"{scenario}: triage is blind to it ({why}); {notebook} found {seen}"
        )
    if scenario in AWS_FOUND:
        notebook, check = AWS_FOUND[scenario]
        assert notebook in follow_ups, f"{scenario}: triage did not suggest {notebook} ({sorted(follow_ups)})"
        found = {f["check"] for f in at_least_warning(follow_ups[notebook]["findings"])}
        assert check in found, f"{scenario}: {notebook} found {sorted(found)}"
    secret = sandbox.aws.secret_key.encode()
    assert not any(secret in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()), "the AWS key leaked"
    if scenario in NO_ROLLBACK:  # the error lines name the database: a release would not fix it
        rollbacks = [a for a in follow_ups["high_error_rate"]["actions"] if a["action"].startswith("ecs_rollback")]
        assert rollbacks == [], rollbacks
