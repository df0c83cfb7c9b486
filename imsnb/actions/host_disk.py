"""The runbook's "High Disk Usage" clean-up on the host imsnb runs on, as two-key plans: old logs (`*.log` older
than 30 days) compressed into one tar.gz per root, uploaded to S3 and verified there (size, and a checksum S3
computed itself), and only then deleted.

What keeps this from becoming the next incident:
- only under the roots named (never `/`), on the root's own filesystem, never following a symlink (a symlinked file
  or directory is not a candidate, and every open and delete goes through directory descriptors opened without
  following links, so a path swapped for a symlink after the plan is refused, not followed);
- a cap on files and bytes per run (the oldest first; the rest is shown as left for a later run);
- the list is shown before anything happens; with both keys, each file is re-checked (same inode, size and mtime)
  when it is read into the archive and again right before it is deleted: a file that changed is left alone;
- the upload is verified before any delete, and a failed or unverified upload deletes nothing.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import socket
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from imsnb.actions.gate import Changed, Plan
from imsnb.aws import aws_or_default
from imsnb.errors import BadParameter

__all__ = [
    "check_root",
    "cleanup_actions",
    "cleanup_candidates",
    "log_archive_cleanup_action",
    "missing_roots",
    "upload_verified",
    "verified_upload",
]

OLDER_THAN_DAYS = 30.0  # the runbook's `-mtime +30`
MAX_FILES = 200  # files one run archives and deletes at most (per root)
MAX_BYTES = 1 * 2**30  # bytes one run archives and deletes at most (per root)
MAX_FILES_LIMIT = 10_000  # what `max_files` may be widened to, whatever a parameter says
MAX_ENTRIES = 200_000  # directory entries one walk looks at
CANDIDATE_COLUMNS = ["root", "path", "bytes", "age_days", "within_cap", "note", "inode", "device", "mtime_ns"]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def check_root(root: str, *, must_exist: bool = True) -> Path:
    """A clean-up root as it really is (symlinks in the path resolved once, here): absolute, never `/`, and (with
    `must_exist`) an existing directory. Bad input otherwise."""
    if not root or not os.path.isabs(root):
        raise BadParameter(f"clean-up root {root!r} is not an absolute path: name a log directory such as /var/log/ims")
    resolved = Path(os.path.realpath(root))
    if resolved == Path("/"):
        raise BadParameter(f"clean-up root {root!r} is the whole filesystem: name a log directory such as /var/log")
    if must_exist and not resolved.is_dir():
        raise BadParameter(f"clean-up root {root!r} is not a directory on this host")
    return resolved


def missing_roots(roots: list[str]) -> list[str]:
    """The roots that are not directories on this host (nothing to clean there)."""
    return [root for root in roots if not check_root(root, must_exist=False).is_dir()]


def cleanup_candidates(
    roots: list[str],
    *,
    pattern: str = "*.log",
    older_than_days: float = OLDER_THAN_DAYS,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    max_entries: int = MAX_ENTRIES,
) -> pd.DataFrame:
    """The runbook's `find /var/log -type f -name "*.log" -mtime +30`, under each root: regular files only (no
    symlink, no file with other hard links: deleting it would free nothing), on the root's filesystem, oldest
    first; `within_cap` says which ones this run would archive and delete (at most `max_files` and `max_bytes`
    per root), the rest are listed as left for a later run."""
    if not 1 <= max_files <= MAX_FILES_LIMIT:
        raise BadParameter(f"max_files must be between 1 and {MAX_FILES_LIMIT}, not {max_files}")
    if max_bytes < 1:
        raise BadParameter(f"max_bytes must be positive, not {max_bytes}")
    cutoff_ns = time.time_ns() - int(older_than_days * 86400 * 1e9)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for given in roots:
        root = check_root(given, must_exist=False)
        if not root.is_dir():
            continue  # nothing to clean on this host (missing_roots says which)
        found = [r for r in _old_files(root, pattern, cutoff_ns, max_entries) if (r["device"], r["inode"]) not in seen]
        seen |= {(r["device"], r["inode"]) for r in found}
        found.sort(key=lambda r: r["mtime_ns"])
        files = size = 0
        for row in found:
            fits = files + 1 <= max_files and size + row["bytes"] <= max_bytes
            if fits:
                files, size = files + 1, size + row["bytes"]
            row["within_cap"] = fits
            row["note"] = "" if fits else f"over this run's cap ({max_files} files, {max_bytes / 2**20:.0f} MiB)"
        rows.extend(found)
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def _old_files(root: Path, pattern: str, cutoff_ns: int, max_entries: int) -> Iterator[dict[str, Any]]:
    device = root.stat().st_dev
    seen = 0
    now_ns = time.time_ns()
    for current, dirs, names in os.walk(root, followlinks=False):
        # os.walk lists a symlinked directory among `dirs` but does not enter it; other filesystems are left too.
        dirs[:] = [d for d in dirs if _same_device_dir(os.path.join(current, d), device)]
        for name in names:
            seen += 1
            if seen > max_entries:
                return
            if not fnmatch.fnmatch(name, pattern):
                continue
            path = os.path.join(current, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_dev != device:
                continue
            if info.st_mtime_ns < cutoff_ns:
                yield {
                    "root": str(root),
                    "path": path,
                    "bytes": info.st_size,
                    "age_days": round((now_ns - info.st_mtime_ns) / 86400e9, 1),
                    "inode": info.st_ino,
                    "device": info.st_dev,
                    "mtime_ns": info.st_mtime_ns,
                }


def _same_device_dir(path: str, device: int) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_dev == device


# --- reading and deleting without following links ----------------------------------------------------------------


@contextmanager
def _parent_fd(root: Path, path: str) -> Iterator[tuple[int, str]]:
    """A descriptor of `path`'s directory, reached from `root` one component at a time without following a link
    (O_NOFOLLOW on each), and the file's name in it; OSError when any component is now a symlink or gone."""
    relative = Path(path).relative_to(root)
    fds = [os.open(root, _DIR_FLAGS)]
    try:
        for part in relative.parts[:-1]:
            fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
        yield fds[-1], relative.parts[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _unchanged(info: os.stat_result, row: dict[str, Any]) -> bool:
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_ino == row["inode"]
        and info.st_dev == row["device"]
        and info.st_size == row["bytes"]
        and info.st_mtime_ns == row["mtime_ns"]
    )


def _file_unchanged(root: Path, row: dict[str, Any]) -> bool:
    try:
        with _parent_fd(root, row["path"]) as (parent, name):
            return _unchanged(os.stat(name, dir_fd=parent, follow_symlinks=False), row)
    except OSError:
        return False


def _archive(root: Path, rows: list[dict[str, Any]], staging: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Write the unchanged files into `staging` (tar.gz, names relative to the root); the rows archived, and the
    files left out, each with why (changed since the plan, or could not be read)."""
    archived, changed = [], []
    with tarfile.open(staging, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for row in rows:
            try:
                with _parent_fd(root, row["path"]) as (parent, name):
                    fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
            except OSError as exc:
                changed.append(_why(row["path"], exc))
                continue
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not _unchanged(info, row):
                    changed.append(f"{row['path']} (changed since the plan)")
                    continue
                member = tarfile.TarInfo(str(Path(row["path"]).relative_to(root)))
                member.size, member.mtime, member.mode = info.st_size, info.st_mtime, stat.S_IMODE(info.st_mode)
                tar.addfile(member, handle)
                archived.append(row)
    return archived, changed


def _digests(path: Path) -> tuple[int, str, str]:
    """(size, MD5 hex, SHA-256 base64) of a file."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha.update(chunk)
    return path.stat().st_size, md5.hexdigest(), base64.b64encode(sha.digest()).decode()


def upload_verified(aws: Any, staging: Path, bucket: str, key: str) -> str:
    """Upload `staging` to s3://bucket/key and check what S3 holds: the same size, and the same SHA-256 (when S3
    returns the checksum it stored) or the same MD5 (the ETag of a single-part upload without KMS). Raises when
    either differs or S3 offers no checksum to compare: nothing may be deleted then. Returns how it was verified."""
    size, md5_hex, sha_b64 = _digests(staging)
    with open(staging, "rb") as body:
        aws_or_default(aws).call(
            "s3",
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(bytes.fromhex(md5_hex)).decode(),
            ChecksumSHA256=sha_b64,
            ContentType="application/gzip",
        )
    head = aws_or_default(aws).call("s3", "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return verified_upload(head, size=size, md5_hex=md5_hex, sha256_b64=sha_b64, where=f"s3://{bucket}/{key}")


def verified_upload(head: dict[str, Any], *, size: int, md5_hex: str, sha256_b64: str, where: str) -> str:
    """How an uploaded object was verified against the local file, from S3's HeadObject answer; RuntimeError when
    the size or a checksum differs, or when there is no checksum to compare."""
    stored = int(head.get("ContentLength", -1))
    if stored != size:
        raise RuntimeError(f"{where} holds {stored} bytes, the archive has {size}: nothing deleted")
    if head.get("ChecksumSHA256"):
        if head["ChecksumSHA256"] != sha256_b64:
            raise RuntimeError(f"{where}: S3's SHA-256 differs from the archive's: nothing deleted")
        return f"{size:,} bytes and SHA-256 verified"
    etag = str(head.get("ETag", "")).strip('"')
    if len(etag) == 32 and "-" not in etag:
        if etag != md5_hex:
            raise RuntimeError(f"{where}: S3's MD5 (ETag) differs from the archive's: nothing deleted")
        return f"{size:,} bytes and MD5 verified"
    raise RuntimeError(f"{where}: S3 returned no checksum to verify the upload against: nothing deleted")


def _why(path: str, exc: OSError) -> str:
    """A file left alone and why: gone or reached through a symlink now (changed since the plan), or no permission."""
    if isinstance(exc, PermissionError):
        return f"{path} (permission denied)"
    return f"{path} (changed since the plan: {exc.strerror or type(exc).__name__})"


def _delete(root: Path, rows: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """Delete the archived files that are still exactly as archived; (files, bytes) deleted and the paths left."""
    deleted = freed = 0
    left = []
    for row in rows:
        try:
            with _parent_fd(root, row["path"]) as (parent, name):
                if not _unchanged(os.stat(name, dir_fd=parent, follow_symlinks=False), row):
                    left.append(f"{row['path']} (changed since it was archived)")
                    continue
                os.unlink(name, dir_fd=parent)
        except OSError as exc:
            left.append(_why(row["path"], exc))
            continue
        deleted, freed = deleted + 1, freed + row["bytes"]
    return deleted, freed, left


# --- the plan ----------------------------------------------------------------------------------------------------


def archive_key(prefix: str, root: Path, at: datetime | None = None) -> str:
    """s3 key of one root's archive: <prefix><host>/logs-<UTC yyyymmddTHHMMSSZ>-<root as a name>.tar.gz."""
    at = at or datetime.now(UTC)
    slug = "-".join(root.parts[1:]) or "root"
    base = prefix.strip("/")
    return f"{base + '/' if base else ''}{socket.gethostname()}/logs-{at:%Y%m%dT%H%M%SZ}-{slug}.tar.gz"


def log_archive_cleanup_action(
    candidates: pd.DataFrame,
    root: str,
    *,
    bucket: str,
    prefix: str = "logs/",
    staging_dir: str | None = None,
    aws: Any = None,
) -> Plan | None:
    """One root's old logs (the `within_cap` rows of `cleanup_candidates` for it): compressed into one tar.gz,
    uploaded to s3://bucket/<prefix>..., verified there, then deleted; None when there is nothing to do.

    The re-check wants at least one file still as planned; files that changed are left out (and said so). A failed
    or unverified upload fails the action before any delete. The staging archive (in `staging_dir`, default the
    temp dir) is removed afterwards whatever happened."""
    resolved = check_root(root)
    rows = [r for r in candidates.to_dict(orient="records") if r["root"] == str(resolved) and r["within_cap"]]
    if not rows:
        return None
    total = sum(int(r["bytes"]) for r in rows)
    key = archive_key(prefix, resolved)
    where = f"s3://{bucket}/{key}"

    def recheck() -> str | None:
        if not any(_file_unchanged(resolved, r) for r in rows):
            return f"none of the {len(rows)} file(s) under {resolved} is still as planned: plan again"
        return None

    def apply() -> str:
        fd, name = tempfile.mkstemp(prefix="imsnb-logs-", suffix=".tar.gz", dir=staging_dir)
        os.close(fd)
        staging = Path(name)
        try:
            archived, changed = _archive(resolved, rows, staging)
            if not archived:
                raise Changed(f"every file under {resolved} changed since the plan: nothing archived or deleted")
            how = upload_verified(aws, staging, bucket, key)
            deleted, freed, left = _delete(resolved, archived)
        finally:
            staging.unlink(missing_ok=True)
        size = sum(r["bytes"] for r in archived) / 2**20
        parts = [
            f"{len(archived)} file(s), {size:.1f} MiB, archived to {where} ({how})",
            f"{deleted} deleted ({freed / 2**20:.1f} MiB freed)",
        ]
        if changed or left:
            gone = changed + left
            parts.append(f"left alone: {'; '.join(gone[:5])}" + (f" and {len(gone) - 5} more" if len(gone) > 5 else ""))
        return "; ".join(parts)

    return Plan(
        action="host_log_cleanup",
        target=str(resolved),
        reason=f"{len(rows)} *.log file(s) older than the runbook's 30 days, {total / 2**20:.1f} MiB",
        expected_effect=f"{total / 2**20:.1f} MiB freed under {resolved}, the files kept in {where}",
        undo=f"aws s3 cp {where} - | tar -xzf - -C {resolved}",
        command=(
            f"tar -czf logs.tar.gz -C {resolved} <the {len(rows)} files listed> && aws s3 cp logs.tar.gz {where} "
            f"&& rm <the same files>"
        ),
        recheck=recheck,
        apply=apply,
    )


def cleanup_actions(
    candidates: pd.DataFrame,
    *,
    bucket: str,
    prefix: str = "logs/",
    staging_dir: str | None = None,
    aws: Any = None,
) -> list[Plan]:
    """One archive-then-delete plan per root that has files within the cap."""
    plans = []
    for root in dict.fromkeys(candidates["root"]):
        plan = log_archive_cleanup_action(
            candidates, root, bucket=bucket, prefix=prefix, staging_dir=staging_dir, aws=aws
        )
        if plan is not None:
            plans.append(plan)
    return plans
