"""Which values are secrets, so the runner can scrub them from every artifact: secret-named environment variables,
passwords and secret query values inside URLs and connection strings, ~/.pgpass, libpq service files, and the keys of
every AWS profile. Secrets are read here and in `targets` (the connection settings), nowhere else."""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

# An environment variable whose name matches holds a secret: its value is scrubbed from artifacts.
SECRET_ENV_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|WEBHOOK|ROUTING_?KEY",
    re.IGNORECASE,
)
# Secrets shorter than this are not scrubbed (they would shred the artifact); docs/configuration.md says so.
MIN_SCRUB_LENGTH = 4

_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def _pgpass_passwords() -> list[str]:
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            fields = re.split(r"(?<!\\):", line, maxsplit=4)
            if len(fields) == 5:
                found.append(fields[4].replace("\\:", ":").replace("\\\\", "\\"))
    return found


def url_password(value: str) -> str | None:
    """The password inside a URL such as redis://:pw@host or postgresql://user:pw@host/db, if any (decoded)."""
    raw = _raw_url_password(value)
    return unquote(raw) if raw else None


def _raw_url_password(value: str) -> str | None:
    if not _URL_WITH_PASSWORD.match(value):
        return None
    try:
        return urlsplit(value).password or None
    except ValueError:
        return None


def _service_passwords() -> list[str]:
    """Passwords in libpq's connection service files (PGSERVICEFILE or ~/.pg_service.conf, and the system one)."""
    paths = [Path(os.environ.get("PGSERVICEFILE") or Path.home() / ".pg_service.conf")]
    if os.environ.get("PGSYSCONFDIR"):
        paths.append(Path(os.environ["PGSYSCONFDIR"]) / "pg_service.conf")
    found = []
    for path in paths:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if sep and key.strip().lower() in ("password", "sslpassword") and value:
                found += [value, value.strip()]
    return found


# Keys of ~/.aws/credentials and ~/.aws/config profiles that hold secrets (the key id too, as for AWS_ACCESS_KEY_ID).
_AWS_SECRET_KEYS = ("aws_secret_access_key", "aws_session_token", "aws_security_token", "aws_access_key_id")


def _aws_profile_secrets() -> list[str]:
    """Keys and tokens of every profile in the shared AWS credentials and config files."""

    found = []
    for variable, default in (("AWS_SHARED_CREDENTIALS_FILE", "credentials"), ("AWS_CONFIG_FILE", "config")):
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read(os.environ.get(variable) or Path.home() / ".aws" / default, encoding="utf-8")
        except configparser.MissingSectionHeaderError:
            continue
        except configparser.ParsingError:
            pass  # a line it cannot read: the profiles around it are read all the same
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in parser.sections():
            found += [parser.get(section, key) for key in _AWS_SECRET_KEYS if parser.get(section, key, fallback="")]
    return found


# A URL query key or conninfo keyword named like a secret (?password=, sslpassword=, ?token=, X-Amz-Signature=).
SECRET_QUERY_KEY = re.compile(
    r"pass|pwd|secret|token|credential|signature|(api|access|private|secret)[_-]?key|^(key|sig)$", re.IGNORECASE
)
# What a value that holds a secret looks like, wherever it enters (a -p parameter, [environments], [schedules],
# [notify]): `secret_in_value` is the one rule they all apply.
_SECRET_VALUE = [
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.I), "a URL with a password"),
    (re.compile(r"(^|[\s'\"])(ssl)?password\s*=", re.I), "a connection string with a password"),
    (re.compile(r"(^|[\s'\"])passfile\s*=", re.I), "a connection string naming a password file"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]
_QUERY_KEY = re.compile(r"[?&;]([^=&;?#\s]+)=")


def secret_in_value(value: object) -> str | None:
    """What secret a value looks like it holds, or None: a URL with a password or with a query key named like a
    secret (`?password=`, `?token=`), a connection string's password or passfile, an AWS access key id, a private
    key. The one rule for every place a value enters (parameters, `[environments]`, `[schedules]`, `[notify]`);
    lists and tables are searched item by item."""
    if isinstance(value, dict):
        return next((w for item in (*value.keys(), *value.values()) if (w := secret_in_value(item))), None)
    if isinstance(value, list | tuple):
        return next((w for item in value if (w := secret_in_value(item))), None)
    if not isinstance(value, str):
        return None
    for pattern, what in _SECRET_VALUE:
        if pattern.search(value):
            return what
    for match in _QUERY_KEY.finditer(value):
        key = unquote(match[1])
        if SECRET_QUERY_KEY.search(key):
            return f"a URL with a secret in its query ({key[:40]!r}=...)"
    return None


_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)", re.IGNORECASE)


def _embedded_secrets(value: str) -> list[str]:
    """Secrets inside one value: a URL's password and query secrets (?password=), a conninfo's password=."""

    found = []
    raw = _raw_url_password(value)
    if raw:
        found += [raw, unquote(raw)]  # as written in the URL (percent-encoded) and as sent
    if "=" not in value:
        return found
    if "?" in value:
        query = value.split("?", 1)[1].split("#", 1)[0]
        for part in re.split(r"[&;]", query):
            key, sep, written = part.partition("=")
            if sep and written and SECRET_QUERY_KEY.search(unquote(key)):
                found += [written, unquote(written), unquote(written.replace("+", " "))]
        found += [v for k, v in parse_qsl(query) if v and SECRET_QUERY_KEY.search(k)]
    for match in _CONNINFO_PASSWORD.finditer(value):
        written = match[1]
        found += [written, written[1:-1].replace("\\'", "'").replace("\\\\", "\\")] if written[:1] == "'" else [written]
    return found


# imsnb's own store (`imsnb.state`): its URL names a database and often a user and password of the team's.
STATE_URL_ENV = "IMSNB_STATE_URL"


def _store_url_secrets() -> list[str]:
    """The store URL as a whole when it carries credentials (a user, a password, a query): its password alone is
    found like any URL's, but the URL itself must not reach an artifact either. Its name without them
    (postgresql://host:port/database, what messages say) is not a secret."""
    value = os.environ.get(STATE_URL_ENV, "").strip()
    if "@" not in value and "?" not in value:
        return []
    return [value, os.environ[STATE_URL_ENV]]


def secret_values() -> list[str]:
    """Every secret value imsnb can know of, longest first: secret-named env vars, passwords and query secrets
    inside URLs and conninfo strings (REDIS_URL's ?password=), the store URL (IMSNB_STATE_URL) with its
    credentials, ~/.pgpass, PGSERVICEFILE services, and the keys of every ~/.aws/credentials (and config) profile."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if not value:
            continue
        if SECRET_ENV_NAME.search(name):
            found.add(value)
            if "WEBHOOK" in name.upper() and "://" in value:  # the token a webhook URL ends with, on its own too
                found.add(urlsplit(value).path.rstrip("/").rsplit("/", 1)[-1])
        found.update(_embedded_secrets(value))
    found.update(_store_url_secrets())
    found.update(_pgpass_passwords())
    found.update(_service_passwords())
    found.update(_aws_profile_secrets())
    return sorted((s for s in found if len(s) >= MIN_SCRUB_LENGTH), key=len, reverse=True)
