"""Remediation: the only module in imsnb that changes anything, and only with two keys.

Every action starts as a `Plan` built from what a diagnostic found; `execute(plans, apply_actions=..., approver=...)`
shows the plans and applies them only when both keys are turned (the notebook's `apply_actions` with an approver,
and the run's `imsnb run --allow-actions`), each re-checked right before it acts and journalled write-ahead. The
rules of the two keys and the audit are told in full in `imsnb.actions.gate`.

Where things are (one home per target; a new action is a function returning a `Plan` in its target's module, plus
a re-export below; e.g. an ElastiCache restore goes in a new `elasticache.py`, an RDS delete or storage increase in
`rds.py`, an ECS force-new-deployment in `ecs.py`):

    gate.py      Plan, Changed, Keys, keys(), execute(), wait_deadline(): the two keys, the re-check, the
                 write-ahead journal and the plan table shown in the notebook. Target modules import it; it imports
                 no target.
    postgres.py  cancel / terminate backends (SQL beside its function), the blast-radius cap
    indexes.py   build the index the planner verified (CREATE INDEX CONCURRENTLY on a connection opened at apply
                 time), drop INVALID leftovers of an interrupted build
    redis.py     FLUSHDB ASYNC
    rds.py       resize (the class ladder), failover, restore from snapshot, the promotion checklist, storage
                 increase and the plans sized from the bottleneck
    ecs.py       desired count, rollback to the previous task definition (or to what the deployment the errors
                 followed replaced: error_rollback_plans), force a new deployment (restart), scaling_actions
    backup.py    the monthly restore test: restore to a temporary instance tagged as this run's, delete only it
    elasticache.py  the cache cluster upgrade: snapshot the old cluster, create the new one from it
    logs.py      CloudWatch Logs retention to the runbook's 30 days (undo: the previous retention, or none)
    host_disk.py old logs on this host: archived to S3 (verified) and only then deleted, under named roots, capped
"""

# The hard limits live with the parameters (checked there before a kernel starts); re-exported for callers.
from imsnb.actions.backup import (
    RESTORE_TEST_TAG,
    rds_delete_restore_test_action,
    rds_restore_test_action,
    restore_test_instance_id,
    run_token,
)
from imsnb.actions.ecs import (
    desired_count_bounds,
    ecs_desired_count_action,
    ecs_force_new_deployment_action,
    ecs_rollback_action,
    ecs_rollback_to_action,
    error_rollback_plans,
    scaling_actions,
)
from imsnb.actions.elasticache import elasticache_create_from_snapshot_action, elasticache_snapshot_action
from imsnb.actions.gate import (
    ALLOW_ENV,
    RECORD_KEYS,
    WAIT_MARGIN_S,
    Changed,
    Keys,
    Plan,
    execute,
    keys,
    wait_budget_s,
    wait_deadline,
    wait_for_status,
)
from imsnb.actions.host_disk import (
    check_root,
    cleanup_actions,
    cleanup_candidates,
    log_archive_cleanup_action,
    missing_roots,
    upload_verified,
    verified_upload,
)
from imsnb.actions.indexes import (
    MAX_INDEXES,
    create_index_action,
    create_index_actions,
    drop_invalid_index_action,
    drop_invalid_index_actions,
)
from imsnb.actions.logs import RETENTION_DAYS, log_retention_action, retention_actions
from imsnb.actions.postgres import (
    BACKEND_NOW,
    CANCEL_BACKEND,
    EXPECTED_STATE,
    MAX_BACKENDS,
    PLAN_COLUMNS,
    SIGNAL_SQL,
    TERMINATE_BACKEND,
    TERMINATE_WAIT_MS,
    backend_action,
    backend_actions,
    terminate_backends_plan,
)
from imsnb.actions.rds import (
    RDS_CLASS_LADDER,
    RESTORE_POLL_S,
    RESTORE_WAIT_S,
    bottleneck_actions,
    next_rds_class,
    promotion_checklist,
    rds_failover_action,
    rds_resize_action,
    rds_restore_action,
    rds_storage_increase_action,
    resize_target_class,
)
from imsnb.actions.redis import CLIENT_DB_FIELD, flush_action, flush_plan
from imsnb.limits import MAX_BACKENDS_LIMIT, MAX_COUNT_LIMIT, check_max_backends, check_max_count

__all__ = [
    "MAX_INDEXES",
    "create_index_action",
    "create_index_actions",
    "drop_invalid_index_action",
    "drop_invalid_index_actions",
    "ALLOW_ENV",
    "BACKEND_NOW",
    "CANCEL_BACKEND",
    "CLIENT_DB_FIELD",
    "EXPECTED_STATE",
    "MAX_BACKENDS",
    "MAX_BACKENDS_LIMIT",
    "MAX_COUNT_LIMIT",
    "PLAN_COLUMNS",
    "RDS_CLASS_LADDER",
    "RECORD_KEYS",
    "RESTORE_POLL_S",
    "RESTORE_TEST_TAG",
    "RESTORE_WAIT_S",
    "RETENTION_DAYS",
    "SIGNAL_SQL",
    "TERMINATE_BACKEND",
    "TERMINATE_WAIT_MS",
    "WAIT_MARGIN_S",
    "Changed",
    "Keys",
    "Plan",
    "backend_action",
    "backend_actions",
    "bottleneck_actions",
    "check_max_backends",
    "check_max_count",
    "check_root",
    "cleanup_actions",
    "cleanup_candidates",
    "desired_count_bounds",
    "ecs_desired_count_action",
    "ecs_force_new_deployment_action",
    "ecs_rollback_action",
    "ecs_rollback_to_action",
    "elasticache_create_from_snapshot_action",
    "elasticache_snapshot_action",
    "error_rollback_plans",
    "execute",
    "flush_action",
    "flush_plan",
    "keys",
    "log_archive_cleanup_action",
    "log_retention_action",
    "missing_roots",
    "next_rds_class",
    "promotion_checklist",
    "rds_delete_restore_test_action",
    "rds_failover_action",
    "rds_resize_action",
    "rds_restore_action",
    "rds_restore_test_action",
    "rds_storage_increase_action",
    "resize_target_class",
    "restore_test_instance_id",
    "retention_actions",
    "run_token",
    "scaling_actions",
    "terminate_backends_plan",
    "upload_verified",
    "verified_upload",
    "wait_budget_s",
    "wait_deadline",
    "wait_for_status",
]
