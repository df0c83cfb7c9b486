"""AWS sources (boto3): one module per service, every call bounded and listed in ACTIONS.

Region, profile, credentials and `AWS_ENDPOINT_URL` come from boto3's standard chain. Retries use botocore's
standard mode with a small cap, but never after a timeout; connect/read timeouts are short, so a dead or hanging
endpoint costs seconds. An unreachable
endpoint or missing credentials raise `Unreachable` (check `aws.reachable` / `aws.credentials`), which a notebook
section turns into a finding. `items_table`, `engine` and `if_exists` are what the service modules share.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imsnb.deadline import deadline_message
from imsnb.errors import NotConfigured, Unreachable
from imsnb.session import LazySession

if TYPE_CHECKING:
    import pandas as pd

# Every AWS API action imsnb calls (service prefix as in IAM). `imsnb iam-policy` prints the read-only policy
# made of the read actions; a test checks every call the library makes is listed here.
READ_ACTIONS = (
    "cloudwatch:GetMetricData",
    "logs:DescribeLogGroups",
    "logs:FilterLogEvents",
    "logs:GetQueryResults",
    "logs:StartQuery",
    "logs:StopQuery",
    "rds:DescribeDBClusters",
    "rds:DescribeDBInstances",
    "rds:DescribeDBSnapshots",
    "rds:DescribeEvents",
    "ecs:DescribeServices",
    "ecs:ListServices",
    "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition",  # when each revision was registered (the change timeline)
    "s3:ListBucket",
    "elasticache:DescribeCacheClusters",
    "elasticache:DescribeEvents",
    "elasticache:DescribeSnapshots",
)
# What `imsnb.actions` calls, only with both keys turned: a separate policy statement (`iam-policy --actions`).
WRITE_ACTIONS = (
    "ecs:UpdateService",
    "rds:FailoverDBCluster",
    "rds:ModifyDBInstance",
    "rds:RestoreDBInstanceFromDBSnapshot",
    "rds:AddTagsToResource",  # the restore test tags its temporary instance (Tags= on the restore call)
    "rds:DeleteDBInstance",  # only the restore test's own temporary instance, re-checked by tag and resource id
    "elasticache:CreateSnapshot",  # the cache cluster upgrade: a snapshot of the old cluster ...
    "elasticache:CreateCacheCluster",  # ... and the new cluster created from it
    "logs:PutRetentionPolicy",  # the runbook's 30 days for a log group kept otherwise (undo: shown, run by hand)
    "s3:PutObject",  # the host clean-up's archive of old logs ...
    "s3:GetObject",  # ... verified (HeadObject: size and checksum) before anything is deleted
)
ACTIONS = READ_ACTIONS + WRITE_ACTIONS
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 3
CALL_DEADLINE_S = 45  # one API call, retries included (connect 3 s + read 10 s a read, 3 attempts)
MAX_PAGES = 200  # pages one paginate() call reads at most
MAX_EMPTY_PAGES = 10  # empty pages in a row (with a token) that end paging: Logs may send a few, never endless


def iam_policy(*, remediation: bool = False, archive: tuple[str, str] | None = None) -> dict[str, Any]:
    """The least-privilege IAM policy: read-only for the diagnostics, plus, if asked, the remediation actions and
    `s3:PutObject` and `s3:GetObject` under the archive's (bucket, prefix): a run folder's name is claimed with a
    conditional put and, when it is taken, the summary there is read to tell a retry of the same run from another
    worker's run (`imsnb.archive.upload`)."""
    statements = [
        {"Sid": "ImsnbReadOnlyDiagnostics", "Effect": "Allow", "Action": sorted(READ_ACTIONS), "Resource": "*"}
    ]
    if remediation:
        statements.append(
            {"Sid": "ImsnbRemediation", "Effect": "Allow", "Action": sorted(WRITE_ACTIONS), "Resource": "*"}
        )
    if archive is not None:
        bucket, prefix = archive
        resource = f"arn:aws:s3:::{bucket}/{prefix.strip('/') + '/' if prefix.strip('/') else ''}*"
        actions = ["s3:GetObject", "s3:PutObject"]
        statements.append({"Sid": "ImsnbArchiveUpload", "Effect": "Allow", "Action": actions, "Resource": resource})
    return {"Version": "2012-10-17", "Statement": statements}


def iam_policy_json(*, remediation: bool = False, archive: tuple[str, str] | None = None) -> str:
    return json.dumps(iam_policy(remediation=remediation, archive=archive), indent=2)


class Aws(LazySession):
    """boto3 clients for one run, created on first use, with bounded retries and timeouts.

    `on_call` (if given) is called with "service:Operation" before every API call: tests count calls with it.
    """

    def __init__(
        self,
        application: str = "imsnb",
        *,
        on_call: Callable[[str], None] | None = None,
        deadline_s: float = CALL_DEADLINE_S,
    ):
        self.application = application
        self.deadline_s = deadline_s
        self.on_call = on_call
        self._session = None
        self._clients: dict[str, Any] = {}
        super().__init__()
        self.notes: list[str] = []  # what was cut short (paging stopped), for the notebook to show

    @classmethod
    def interactive(cls) -> Aws:
        return cls("interactive")

    def client(self, service: str) -> Any:
        self.raise_if_failed()
        if service not in self._clients:
            # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
            import boto3

            # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
            from botocore.config import Config

            if self._session is None:
                self._session = boto3.session.Session()
            config = Config(
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                user_agent_extra=f"imsnb/{self.application}",
            )
            # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
            from botocore.exceptions import NoRegionError

            # botocore reads AWS_DEFAULT_REGION but not AWS_REGION (the runbook's and the docs' name).
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
            try:
                client = self._session.client(service, config=config, region_name=region)
            except NoRegionError:
                raise self.fail(NotConfigured("AWS has no region (set AWS_REGION)", check="aws.credentials")) from None
            client.meta.events.register("before-call", lambda model, **_: self._record(iam_action(service, model.name)))
            client.meta.events.register_first("needs-retry", _no_retry_after_timeout)
            self._clients[service] = client
        return self._clients[service]

    def _record(self, action: str) -> None:
        if self.on_call is not None:
            self.on_call(action)

    def call(self, service: str, operation: str, /, **kwargs: Any) -> dict[str, Any]:
        """One API call; connection and credential failures become Unreachable (remembered for the run)."""
        # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
        from botocore.exceptions import (
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        client = self.client(service)
        try:
            return _within(self.deadline_s, getattr(client, operation), kwargs)
        except _DeadlineExceeded:
            failure = Unreachable(
                f"aws {service}", deadline_message(self.deadline_s, f"{operation} answer"), check="aws.reachable"
            )
        except NoCredentialsError:
            failure = NotConfigured(
                "AWS has no credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                check="aws.credentials",
            )
        except NoRegionError:
            failure = NotConfigured("AWS has no region (set AWS_REGION)", check="aws.credentials")
        except PartialCredentialsError as exc:
            failure = Unreachable("aws", f"incomplete credentials: {exc}", check="aws.credentials")
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            failure = Unreachable(f"aws {service}", " ".join(str(exc).split()), check="aws.reachable")
        raise self.fail(failure)

    def paginate(
        self,
        service: str,
        operation: str,
        key: str,
        /,
        *,
        limit: int = 10_000,
        max_pages: int = MAX_PAGES,
        **kwargs: Any,
    ) -> list[Any]:
        """Items under `key` across pages (NextToken/Marker), at most `limit` items and `max_pages` pages.

        A token that keeps coming back with nothing (MAX_EMPTY_PAGES empty pages in a row, or the same token
        twice) ends it early: what was found is returned and a note says so (printed, and kept in `notes`).
        """
        items: list[Any] = []
        token_in, token_out = _TOKENS.get((service, operation), ("NextToken", "NextToken"))
        empty, seen = 0, set()
        for _ in range(max(1, max_pages)):
            page = self.call(service, operation, **kwargs)
            found = page.get(key) or []
            items.extend(found)
            token = page.get(token_out)
            if not token or len(items) >= limit:
                return items[:limit]
            empty = 0 if found else empty + 1
            if empty >= MAX_EMPTY_PAGES or token in seen:
                why = "the same page token came back" if token in seen else f"{empty} empty pages in a row"
                return self._note(f"{service} {operation}: stopped paging, {why} ({len(items)} items found)", items)
            seen.add(token)
            kwargs[token_in] = token
        return self._note(
            f"{service} {operation}: stopped after {max(1, max_pages)} pages ({len(items)} items found, more remain)",
            items,
        )

    def _note(self, note: str, items: list[Any]) -> list[Any]:
        self.notes.append(note)
        print(f"note: {note}")
        return items


class _DeadlineExceeded(Exception):
    pass


def _within(seconds: float, operation: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """`operation(**kwargs)` if it finishes within `seconds`; else _DeadlineExceeded, the call left behind in its
    daemon thread (botocore's read timeout bounds each read only: an endpoint trickling its answer would keep it
    forever). The session is then remembered as unreachable, so nothing else waits on it."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = operation(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="imsnb-aws-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _DeadlineExceeded
    if "error" in box:
        raise box["error"]
    return box["value"]


def _no_retry_after_timeout(caught_exception: BaseException | None = None, **_: Any) -> None:
    """An endpoint that accepted and did not answer in READ_TIMEOUT_S will not answer the next attempt either:
    give it up at once (botocore would retry it MAX_ATTEMPTS times, 30 s and more); throttling and 5xx are still
    retried."""
    # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    if isinstance(caught_exception, (ReadTimeoutError, ConnectTimeoutError)):
        raise caught_exception


# API operations whose IAM action has another name.
_IAM_NAMES = {("s3", "ListObjectsV2"): "ListBucket", ("s3", "HeadObject"): "GetObject"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API call needs: ("s3", "ListObjectsV2") -> "s3:ListBucket"."""
    return f"{service}:{_IAM_NAMES.get((service, operation), operation)}"


_TOKENS = {
    ("rds", "describe_db_snapshots"): ("Marker", "Marker"),
    ("rds", "describe_db_instances"): ("Marker", "Marker"),
    ("rds", "describe_events"): ("Marker", "Marker"),
    ("elasticache", "describe_cache_clusters"): ("Marker", "Marker"),
    ("elasticache", "describe_snapshots"): ("Marker", "Marker"),
    ("s3", "list_objects_v2"): ("ContinuationToken", "NextContinuationToken"),
    ("logs", "filter_log_events"): ("nextToken", "nextToken"),
    ("logs", "describe_log_groups"): ("nextToken", "nextToken"),
}


def default_aws() -> Aws:
    """The session used when a call is made without one (interactive use)."""
    return Aws.default()


def aws_or_default(aws: Aws | None = None) -> Aws:
    """`aws`, or the interactive default session when None (what every fetcher does with its `aws` argument)."""
    return Aws.or_default(aws)


# --- what the service modules share -------------------------------------------------------------------------------

Column = str | Callable[[dict[str, Any]], Any]


def items_table(items: list[dict[str, Any]], columns: dict[str, Column]) -> pd.DataFrame:
    """API items as a table, one row each, the columns in the order given: a column is the item's value under that
    key (None when absent) or a function of the item."""
    # lazy: pandas (~2 s to import) only for this table
    import pandas as pd

    rows = [
        {name: item.get(how) if isinstance(how, str) else how(item) for name, how in columns.items()} for item in items
    ]
    return pd.DataFrame(rows, columns=list(columns))


def engine(item: dict[str, Any]) -> str:
    """An RDS or ElastiCache description's engine and version: "postgres 15.4", "redis 7.0"."""
    return f"{item.get('Engine')} {item.get('EngineVersion', '')}".strip()


def if_exists(fetch: Callable[[], Any]) -> Any:
    """`fetch()`, or None when AWS answers that what it asks for does not exist (CacheClusterNotFound and the like)."""
    try:
        return fetch()
    except Exception as exc:  # noqa: BLE001 - "not found" is the answer "none"; any other error is raised again
        if "NotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        raise
