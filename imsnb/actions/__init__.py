"""Remediation: the only module in imsnb that changes anything, and only with two keys.

Every action starts as a `Plan` built from what a diagnostic found; `execute(plans, apply_actions=..., approver=...)`
shows the plans and applies them only when both keys are turned (the notebook's `apply_actions` with an approver,
and the run's `imsnb run --allow-actions`), each re-checked right before it acts and journalled write-ahead. The
rules of the two keys and the audit are told in full in `imsnb.actions.gate`.

Where things are (one home per target; a new action is a function returning a `Plan` in its target's module, listed
in that module's `__all__`; e.g. an ElastiCache restore goes in a new `elasticache.py` (imported below), an RDS delete
or storage increase in `rds.py`, an ECS force-new-deployment in `ecs.py`):

    gate.py      Plan, Changed, Keys, keys(), execute(), wait_deadline(): the two keys, the re-check, the
                 write-ahead journal and the plan table shown in the notebook. Target modules import it; it imports
                 no target.
    postgres.py  cancel / terminate backends (SQL beside its function), the blast-radius cap
    indexes.py   build the index the planner verified (CREATE INDEX CONCURRENTLY on a connection opened at apply
                 time), drop INVALID leftovers of an interrupted build
    cache.py     FLUSHDB ASYNC (Redis)
    rds.py       resize (the class ladder), failover, restore from snapshot, the promotion checklist, storage
                 increase and the plans sized from the bottleneck
    ecs.py       desired count, rollback to the previous task definition (or to what the deployment the errors
                 followed replaced: error_rollback_plans), force a new deployment (restart), scaling_actions
    backup.py    the monthly restore test: restore to a temporary instance tagged as this run's, delete only it
    elasticache.py  the cache cluster upgrade: snapshot the old cluster, create the new one from it
    logs.py      CloudWatch Logs retention to the runbook's 30 days (undo: the previous retention, or none)
    host_disk.py old logs on this host: archived to S3 (verified) and only then deleted, under named roots, capped
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.actions import backup as _backup
from imsnb.actions import cache as _cache
from imsnb.actions import ecs as _ecs
from imsnb.actions import elasticache as _elasticache
from imsnb.actions import gate as _gate
from imsnb.actions import host_disk as _host_disk
from imsnb.actions import indexes as _indexes
from imsnb.actions import logs as _logs
from imsnb.actions import postgres as _postgres
from imsnb.actions import rds as _rds
from imsnb.actions.backup import *
from imsnb.actions.cache import *
from imsnb.actions.ecs import *
from imsnb.actions.elasticache import *
from imsnb.actions.gate import *
from imsnb.actions.host_disk import *
from imsnb.actions.indexes import *
from imsnb.actions.logs import *
from imsnb.actions.postgres import *
from imsnb.actions.rds import *

# The hard limits live with the parameters (checked there before a kernel starts); re-exported for callers.
from imsnb.limits import MAX_BACKENDS_LIMIT, MAX_COUNT_LIMIT, check_max_backends, check_max_count

__all__: list[str] = ["MAX_BACKENDS_LIMIT", "MAX_COUNT_LIMIT", "check_max_backends", "check_max_count"]
__all__ += _backup.__all__
__all__ += _ecs.__all__
__all__ += _elasticache.__all__
__all__ += _gate.__all__
__all__ += _host_disk.__all__
__all__ += _indexes.__all__
__all__ += _logs.__all__
__all__ += _postgres.__all__
__all__ += _rds.__all__
__all__ += _cache.__all__
