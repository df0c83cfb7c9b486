"""Where each target is, from the environment (the runbook's own variable names) and an optional imsnb.toml.

Secrets (passwords, tokens, keys) are read here and nowhere else: the diagnostics get connection settings from
these functions, and the runner asks `secret_values()` what to scrub from every artifact.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from imsnb.errors import NotConfigured

# An environment variable whose name matches holds a secret: its value is scrubbed from artifacts.
SECRET_ENV_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL",
    re.IGNORECASE,
)
# Secrets shorter than this are not scrubbed (they would shred the artifact); the README says so.
MIN_SCRUB_LENGTH = 4

_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


def postgres_settings() -> dict[str, str]:
    """psycopg connection keywords from the runbook's DB_* variables; libpq reads PG* (and ~/.pgpass) itself."""
    mapping = {
        "DB_HOST": "host",
        "DB_PORT": "port",
        "DB_USER": "user",
        "DB_NAME": "dbname",
        "DB_PASSWORD": "password",
        "DB_SSLMODE": "sslmode",
    }
    return {key: os.environ[name] for name, key in mapping.items() if os.environ.get(name)}


def postgres_settings_for(conninfo: str = "", *, host: str | None = None, port: int | None = None) -> dict[str, str]:
    """Connection keywords for another server, e.g. an instance restored from a snapshot: a libpq conninfo without
    a password ("host=... port=... dbname=... user=...") and/or a host and port, the rest (user, database,
    password) as for the usual target — a restore keeps the master credentials."""
    from psycopg.conninfo import conninfo_to_dict

    from imsnb.errors import BadParameter

    try:
        settings = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    except Exception as exc:  # noqa: BLE001 - psycopg's ProgrammingError names the bad part
        raise BadParameter(f"cannot read the connection info {conninfo!r}: {' '.join(str(exc).split())}") from None
    if "password" in settings:
        raise BadParameter("the connection info holds a password: pass it through DB_PASSWORD or PGPASSWORD instead")
    if host:
        settings["host"] = host
    if port:
        settings["port"] = str(port)
    return {k: v for k, v in postgres_settings().items() if k not in ("host", "port")} | settings


def postgres_label() -> str:
    """Where the diagnostics will connect, for messages: host:port/dbname as user (never the password)."""
    settings = postgres_settings()

    def pick(key: str, pg_name: str, default: str) -> str:
        return settings.get(key) or os.environ.get(pg_name) or default

    host = pick("host", "PGHOST", "localhost")
    return (
        f"{host}:{pick('port', 'PGPORT', '5432')}/{pick('dbname', 'PGDATABASE', '?')} as {pick('user', 'PGUSER', '?')}"
    )


def redis_settings() -> dict[str, object]:
    """redis-py keywords: REDIS_URL if set (redis:// or rediss://), else REDIS_HOST/PORT/DB/USERNAME/PASSWORD."""
    url = os.environ.get("REDIS_URL")
    if url:
        return {"url": url}
    host = os.environ.get("REDIS_HOST")
    if not host:
        raise NotConfigured(NOT_CONFIGURED["redis"], check="cache.configured")
    try:
        settings: dict[str, object] = {"host": host, "port": int(os.environ.get("REDIS_PORT") or 6379)}
        settings["db"] = int(os.environ.get("REDIS_DB") or 0)
    except ValueError:
        raise NotConfigured("REDIS_PORT and REDIS_DB must be numbers") from None
    for name, key in (("REDIS_USERNAME", "username"), ("REDIS_PASSWORD", "password")):
        if os.environ.get(name):
            settings[key] = os.environ[name]
    return settings


def redis_label() -> str:
    """Where the cache diagnostics connect, for messages (never the password)."""
    try:
        settings = redis_settings()
    except NotConfigured:
        return "redis (not configured)"
    if "url" in settings:
        try:
            parts = urlsplit(str(settings["url"]))
            return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        except ValueError:
            return "redis (bad REDIS_URL)"
    return f"{settings['host']}:{settings['port']}/{settings['db']}"


def api_url() -> str:
    """Base URL of the IMS API (IMSNB_API_URL, or the runbook's API_HOST on port API_PORT/8000)."""
    url = os.environ.get("IMSNB_API_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("API_HOST")
    if not host:
        raise NotConfigured(NOT_CONFIGURED["api"], check="api.configured")
    return f"http://{host}:{os.environ.get('API_PORT') or 8000}"


def prometheus_url() -> str:
    """Base URL of the Prometheus server holding the API's request metrics (PROMETHEUS_URL)."""
    url = os.environ.get("PROMETHEUS_URL")
    if not url:
        raise NotConfigured(NOT_CONFIGURED["prometheus"], check="prometheus.configured")
    return url.rstrip("/")


# The API's metric names in Prometheus, defaulting to the usual instrumentation libraries' names.
PROMETHEUS_NAMES = {
    "requests_metric": ("IMSNB_PROM_REQUESTS_METRIC", "http_requests_total"),
    "status_label": ("IMSNB_PROM_STATUS_LABEL", "status"),
    "duration_metric": ("IMSNB_PROM_DURATION_METRIC", "http_request_duration_seconds_bucket"),
    "selector": ("IMSNB_PROM_SELECTOR", ""),  # extra label matchers for every series, e.g. job="ims-api"
}


def prometheus_name(kind: str) -> str:
    """A metric name, label or selector for the API's series: its IMSNB_PROM_* variable, else the default."""
    variable, default = PROMETHEUS_NAMES[kind]
    return os.environ.get(variable, default)


# AWS resource names, defaulting to the runbook's own.
AWS_NAMES = {
    "rds_instance": ("IMSNB_RDS_INSTANCE", "ims-postgres-db"),
    "ecs_cluster": ("IMSNB_ECS_CLUSTER", "ims-production"),
    "ecs_service": ("IMSNB_ECS_SERVICE", "ims-backend"),
    "log_group": ("IMSNB_LOG_GROUP", "/ims/application"),
    "backup_bucket": ("IMSNB_BACKUP_BUCKET", "ims-backups"),
    "cache_cluster": ("IMSNB_CACHE_CLUSTER", "ims-redis"),
}


def aws_name(kind: str, given: str | None = None) -> str:
    """A notebook parameter if given, else its IMSNB_* variable, else the runbook's name (e.g. ims-postgres-db)."""
    variable, default = AWS_NAMES[kind]
    return given or os.environ.get(variable) or default


def tls_endpoints() -> list[str]:
    """host:port endpoints whose certificates to check: IMSNB_TLS_ENDPOINTS (comma-separated), else the API's
    host on 443 when IMSNB_API_URL is https."""
    listed = [e.strip() for e in os.environ.get("IMSNB_TLS_ENDPOINTS", "").split(",") if e.strip()]
    if listed:
        return listed
    url = os.environ.get("IMSNB_API_URL", "")
    if url.startswith("https://"):
        parts = urlsplit(url)
        return [f"{parts.hostname}:{parts.port or 443}"]
    return []


def tls_ca_file() -> str | None:
    """Extra CA bundle for certificate checks (a private CA): IMSNB_TLS_CA_FILE; else the system's store."""
    return os.environ.get("IMSNB_TLS_CA_FILE") or None


# --- which targets are configured --------------------------------------------------------------------------------
# A target none of whose variables is set is not configured: its checks are one INFO "<target>.configured ... :
# skipped" finding, out of the escalation. CRITICAL is kept for a configured target that does not answer. AWS is
# not listed: its credential chain (instance roles, SSO) cannot be known without asking it.
TARGET_VARIABLES = {
    "postgres": (
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
    ),
    "redis": ("REDIS_URL", "REDIS_HOST"),
    "api": ("IMSNB_API_URL", "API_HOST"),
    "prometheus": ("PROMETHEUS_URL",),
}
NOT_CONFIGURED = {
    "postgres": "no PostgreSQL target: set PGHOST (and PGPORT, PGDATABASE, PGUSER), or DB_HOST, DB_NAME, DB_USER",
    "redis": "no Redis target: set REDIS_URL, or REDIS_HOST (and REDIS_PORT, REDIS_PASSWORD)",
    "api": "no API target: set IMSNB_API_URL (e.g. https://api.ims-2.0.com) or API_HOST",
    "prometheus": "no Prometheus target: set PROMETHEUS_URL (e.g. http://prometheus:9090)",
}


def target_configured(target: str, environ: dict[str, str] | None = None) -> bool:
    """Whether a target (postgres, redis, api, prometheus) has any of its variables set; other targets (aws, tls,
    host) count as configured, as their configuration cannot be known beforehand."""
    environ = os.environ if environ is None else environ
    names = TARGET_VARIABLES.get(target)
    return names is None or any(environ.get(name) for name in names)


def postgres_configured() -> None:
    """Raises NotConfigured (check `postgres.configured`) when no PG* or DB_* variable names a server."""
    if not target_configured("postgres"):
        raise NotConfigured(NOT_CONFIGURED["postgres"], check="postgres.configured")


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


def secret_values() -> list[str]:
    """Every secret value imsnb can know of, longest first: secret-named env vars, URL passwords, ~/.pgpass."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if not value:
            continue
        if SECRET_ENV_NAME.search(name):
            found.add(value)
        raw = _raw_url_password(value)
        if raw:
            found.update({raw, unquote(raw)})  # as written in the URL (percent-encoded) and as sent
    found.update(_pgpass_passwords())
    return sorted((s for s in found if len(s) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


def config_file() -> Path | None:
    """imsnb.toml from IMSNB_CONFIG, else the current directory, else the repository root."""
    explicit = os.environ.get("IMSNB_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "imsnb.toml", Path(__file__).resolve().parent.parent / "imsnb.toml"):
        if candidate.is_file():
            return candidate
    return None


def environment_settings(name: str) -> dict[str, str]:
    """The `[environments.NAME]` table of imsnb.toml (env-var names as keys), or NotConfigured saying why not.

    Secret-looking keys are refused: secrets belong in the environment or a secrets store, never in a file that
    travels with the notebooks.
    """
    path = config_file()
    if path is None:
        raise NotConfigured(f"environment {name!r} needs an imsnb.toml (set IMSNB_CONFIG) with [environments.{name}]")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NotConfigured(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    section = data.get("environments", {}).get(name)
    if not isinstance(section, dict):
        known = ", ".join(sorted(data.get("environments", {}))) or "none"
        raise NotConfigured(f"environment {name!r} is not in {path} (known: {known})")
    for key, value in section.items():
        if SECRET_ENV_NAME.search(key) or url_password(str(value)):
            raise NotConfigured(f"{path}: [environments.{name}] {key} looks like a secret: set it in the environment")
    return {key: str(value) for key, value in section.items()}


def use_environment(name: str) -> dict[str, str]:
    """Apply a named environment of imsnb.toml to os.environ; "default" (or empty) changes nothing."""
    if not name or name == "default":
        return {}
    applied = environment_settings(name)
    os.environ.update(applied)
    return applied
