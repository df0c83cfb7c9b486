"""Upload of run folders and the incident's index.html to S3 (`--archive s3://bucket/prefix`)."""

from __future__ import annotations

import re
from pathlib import Path

from imsnb.archive.index import INDEX
from imsnb.aws import Aws
from imsnb.errors import BadParameter, ImsnbError

RUN_FILES = ("notebook.ipynb", "report.html", "summary.json")
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".ipynb": "application/json"}


class UploadFailed(ImsnbError):
    """The archive upload did not complete; the local run folders are untouched."""


def parse_archive_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix'); bad input otherwise."""
    match = _S3_URL.match(url or "")
    if not match:
        raise BadParameter(f"archive {url!r} is not an S3 URL: use s3://bucket or s3://bucket/prefix")
    return match[1], (match[2] or "").strip("/")


def run_files(folder: Path) -> list[Path]:
    """A run folder's files to upload: RUN_FILES first, then the files its notebook kept (metrics-YYYYMMDD.json),
    regular files only."""
    extra = sorted(p for p in folder.iterdir() if p.name not in RUN_FILES and p.is_file() and not p.is_symlink())
    return [folder / name for name in RUN_FILES] + extra


def upload(url: str, run_folders: list[Path], incident_dir: Path) -> list[str]:
    """Upload the run folders and the incident's index.html under s3://bucket/prefix/<incident>/; the keys written.

    Uses the same boto3 client construction as the diagnostics (AWS_ENDPOINT_URL, bounded retries and timeouts).
    Needs s3:PutObject on the bucket. Raises UploadFailed with one line on any failure.
    """
    # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_archive_url(url)
    base = "/".join(p for p in (prefix, incident_dir.name) if p)
    files = [(path, f"{base}/{folder.name}/{path.name}") for folder in run_folders for path in run_files(folder)]
    if (incident_dir / INDEX).is_file():
        files.append((incident_dir / INDEX, f"{base}/{INDEX}"))
    keys = []
    try:
        client = Aws("archive").client("s3")
        for path, key in files:
            if not path.is_file():
                continue
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=path.read_bytes(),
                ContentType=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
            )
            keys.append(key)
    except (BotoCoreError, ClientError, OSError, ImsnbError) as exc:
        done = f" after {len(keys)} of {len(files)} file(s)" if keys else ""
        raise UploadFailed(f"archive upload to {url} failed{done}: {' '.join(str(exc).split())}") from None
    return keys
