"""S3: a backup bucket's object count, total size and newest object's age (`aws s3 ls --recursive --summarize`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from imsnb.aws import Aws, aws_or_default, items_table
from imsnb.findings import Finding, Severity

MAX_OBJECTS = 100_000


@dataclass
class BucketSummary:
    bucket: str
    prefix: str
    objects: int
    total_bytes: int
    newest_key: str | None
    newest_age_h: float | None
    truncated: bool  # more than MAX_OBJECTS: counts are a lower bound


def bucket_summary(
    bucket: str,
    prefix: str = "",
    *,
    aws: Aws | None = None,
    now: datetime | None = None,
    max_objects: int = MAX_OBJECTS,
) -> BucketSummary:
    now = now or datetime.now(UTC)
    objects = aws_or_default(aws).paginate(
        "s3", "list_objects_v2", "Contents", limit=max_objects, Bucket=bucket, Prefix=prefix
    )
    newest = max(objects, key=lambda o: o["LastModified"], default=None)
    return BucketSummary(
        bucket,
        prefix,
        len(objects),
        sum(o.get("Size", 0) for o in objects),
        newest["Key"] if newest else None,
        round((now - newest["LastModified"]).total_seconds() / 3600, 1) if newest else None,
        len(objects) >= max_objects,
    )


def newest_objects(bucket: str, prefix: str = "", *, aws: Aws | None = None, top: int = 10) -> pd.DataFrame:
    objects = aws_or_default(aws).paginate(
        "s3", "list_objects_v2", "Contents", limit=MAX_OBJECTS, Bucket=bucket, Prefix=prefix
    )
    frame = items_table(objects, {"key": "Key", "bytes": lambda o: o.get("Size", 0), "last_modified": "LastModified"})
    return frame.sort_values("last_modified", ascending=False).head(top).reset_index(drop=True)


def backup_age_finding(summary: BucketSummary, *, max_age_h: float = 24.0) -> Finding:
    if summary.newest_age_h is None:
        return Finding.of(
            "aws.s3.backup_age",
            Severity.CRITICAL,
            f"s3://{summary.bucket}/{summary.prefix}: no backup objects",
            threshold=max_age_h,
            unit="h",
        )
    return Finding.of(
        "aws.s3.backup_age",
        Severity.OK if summary.newest_age_h <= max_age_h else Severity.WARNING,
        f"s3://{summary.bucket}/{summary.prefix}: {summary.objects:,} objects, "
        f"{summary.total_bytes / 2**30:.2f} GiB; newest {summary.newest_key} is {summary.newest_age_h:.0f} h old",
        value=summary.newest_age_h,
        threshold=max_age_h,
        unit="h",
    )
