"""Upload of run folders and the incident's index.html to S3 (`--archive s3://bucket/prefix`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imsnb.aws import Aws
from imsnb.errors import BadParameter, ImsnbError
from imsnb.files import write_atomic
from imsnb.runs.index import INDEX, render_incident
from imsnb.state.catalogue import record_archived

RUN_FILES = ("notebook.ipynb", "report.html", "summary.json")
ARCHIVED = ".archived"  # in a run folder, once uploaded: its URL in each archive, a line each (the index links by it)
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
MAX_NAME_ATTEMPTS = 20
MAX_INDEX_ATTEMPTS = 10  # index.html written over by other workers' uploads this many times in a row: give up
_CHANGED = ("PreconditionFailed", "412", "NoSuchKey", "404", "ConditionalRequestConflict", "409")
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
    regular files only, not imsnb's own dot files."""
    extra = sorted(
        p
        for p in folder.iterdir()
        if p.name not in RUN_FILES and not p.name.startswith(".") and p.is_file() and not p.is_symlink()
    )
    return [folder / name for name in RUN_FILES] + extra


def upload(url: str, run_folders: list[Path], incident_dir: Path) -> list[str]:
    """Upload the run folders and the incident's index.html under s3://bucket/prefix/<incident>/; the keys written.

    A run folder is named by its start to the second: two workers starting the same notebook for one incident in
    the same second would write the same keys. Each folder's summary.json is written first and only if absent
    (`If-None-Match: *`); a folder name another run holds gets the next free `-2`, `-3` (the same run uploaded
    again, e.g. on a retry, finds its own summary there and overwrites its files). The name it got is kept in the
    folder (ARCHIVED) and, with a shared store, in the run catalogue.

    The archive's index.html is the incident's index written for the archive: every run linked by its name there,
    this worker's and (with a shared store) every other worker's that was archived under the same prefix; a run
    that is not there is named with the worker and folder it is on. It is written only over the page it was
    rendered after (`If-Match` its ETag): another worker's upload landing in between makes it render again, so
    the page written last never lacks a run recorded before it.

    Uses the same boto3 client construction as the diagnostics (AWS_ENDPOINT_URL, bounded retries and timeouts).
    Needs s3:PutObject and s3:GetObject on the bucket. Raises UploadFailed with one line on any failure.
    """
    # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_archive_url(url)
    base = "/".join(p for p in (prefix, incident_dir.name) if p)
    keys: list[str] = []
    archived: dict[Path, str] = {}
    total = sum(len(run_files(folder)) for folder in run_folders) + 1
    try:
        client = Aws("archive").client("s3")
        for folder in run_folders:
            name = _claim(client, bucket, base, folder)
            for path in run_files(folder):
                if path.is_file():
                    keys.append(_put(client, bucket, f"{base}/{name}/{path.name}", path.read_bytes(), path.suffix))
            others = [at for at in archived_urls(folder) if not at.startswith(f"s3://{bucket}/{base}/")]
            archived[folder] = "\n".join([*others, f"s3://{bucket}/{base}/{name}"])
            write_atomic(folder / ARCHIVED, archived[folder] + "\n")
        problem = record_archived(archived)
        if problem:
            logging.getLogger(__name__).warning("%s", problem)
        names = archive_names(incident_dir, f"s3://{bucket}/{base}/")
        index = f"{base}/{INDEX}"
        keys.append(_put_index(client, bucket, index, lambda: render_incident(incident_dir, archived=names)))
    except (BotoCoreError, ClientError, OSError, ImsnbError) as exc:
        done = f" after {len(keys)} of {total} file(s)" if keys else ""
        raise UploadFailed(f"archive upload to {url} failed{done}: {' '.join(str(exc).split())}") from None
    return keys


def archived_urls(folder: Path) -> list[str]:
    """Where a run folder was archived: its URL in each archive it was uploaded to (none when never uploaded)."""
    try:
        return (folder / ARCHIVED).read_text(encoding="utf-8").split()
    except OSError:
        return []


def archive_names(incident_dir: Path, under: str) -> Callable[[dict[str, Any]], str | None]:
    """For the archive's index: a run's folder name in the archive at `under` (s3://bucket/prefix/<incident>/), from
    its folder's ARCHIVED (this worker's runs) or the catalogue's `archived_as` (other workers'); None when it is
    not there."""

    def name(run: dict[str, Any]) -> str | None:
        if run.get("remote"):
            urls = str(run.get("archived_as") or "").split()
        else:
            urls = archived_urls(incident_dir / run["folder"])
        rests = (url[len(under) :] for url in urls if url.startswith(under))
        return next((rest for rest in rests if rest and "/" not in rest), None)

    return name


def _put_index(client: Any, bucket: str, key: str, render: Callable[[], str]) -> str:
    """Write the page `render` gives over the one it was rendered after, rendering again when another upload wrote
    it in between."""
    # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
    from botocore.exceptions import ClientError

    for _ in range(MAX_INDEX_ATTEMPTS):
        try:
            condition = {"IfMatch": client.head_object(Bucket=bucket, Key=key)["ETag"]}
        except ClientError as exc:
            # 403: S3 answers a HEAD of a missing key so when the role may not list the bucket (the policy we print
            # grants GetObject and PutObject only); an existing one it may read answers 200
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound", "403", "Forbidden"):
                raise
            condition = {"IfNoneMatch": "*"}
        try:
            return _put(client, bucket, key, render().encode(), ".html", **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _CHANGED:
                raise
    raise UploadFailed(f"{INDEX} was written by other uploads {MAX_INDEX_ATTEMPTS} times while this one wrote it")


def _put(client: Any, bucket: str, key: str, body: bytes, suffix: str, **condition: str) -> str:
    content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **condition)
    return key


def _claim(client: Any, bucket: str, base: str, folder: Path) -> str:
    """The folder's name in the archive: its own, else the first `-N` no other run holds."""
    # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
    from botocore.exceptions import ClientError

    summary = (folder / "summary.json").read_bytes()
    for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
        name = folder.name if attempt == 1 else f"{folder.name}-{attempt}"
        key = f"{base}/{name}/summary.json"
        try:
            _put(client, bucket, key, summary, ".json", IfNoneMatch="*")
            return name
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
        if client.get_object(Bucket=bucket, Key=key)["Body"].read() == summary:
            return name  # this run, uploaded before
    raise UploadFailed(f"no free name for {folder.name} in the archive after {MAX_NAME_ATTEMPTS} tries")
