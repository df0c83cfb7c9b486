"""Where each target is: connection settings for PostgreSQL and Redis, the API's and Prometheus's URLs, the
Prometheus series names, the AWS resource names and the TLS endpoints, all from the environment in the runbook's own
variable names; and which targets are configured at all."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from imsnb.errors import BadParameter, NotConfigured


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
    a password ("host=... port=... dbname=... user=...") and/or a host and port, the rest (user, database) as for
    the usual target — a restore keeps the master credentials.

    The configured password (DB_PASSWORD, PGPASSWORD, a PGSERVICE entry's) goes only to the configured server
    (same host, hostaddr and port) or to `host`/`port`, which the caller resolved itself (the endpoint of the
    instance a notebook restored, from AWS; never a parameter). A conninfo naming any other server gets
    `password=''`: libpq then sends only that server's own ~/.pgpass (PGPASSFILE) entry, or nothing.
    """
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    from psycopg.conninfo import conninfo_to_dict

    try:
        settings = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    except Exception as exc:  # noqa: BLE001 - psycopg's ProgrammingError names the bad part
        raise BadParameter(f"cannot read the connection info {conninfo!r}: {' '.join(str(exc).split())}") from None
    if "password" in settings or "sslpassword" in settings:
        raise BadParameter("the connection info holds a password: pass it through DB_PASSWORD or PGPASSWORD instead")
    refused = sorted({"passfile", "service"} & set(settings))
    if refused:
        raise BadParameter(f"the connection info names {', '.join(refused)}: give host, port, dbname and user only")
    base = postgres_settings()
    configured = _configured_endpoint(base)
    if not ({"host", "hostaddr"} & set(settings)):
        settings |= {k: v for k, v in zip(("host", "hostaddr"), configured[:2], strict=True) if v}
    settings.setdefault("port", configured[2])
    trusted = bool(host)
    if host:
        settings = {k: v for k, v in settings.items() if k != "hostaddr"} | {"host": host}
    if port:
        settings["port"] = str(port)
    target = (settings.get("host", ""), settings.get("hostaddr", ""), settings["port"])
    if trusted or _same_endpoint(target, configured):
        return {k: v for k, v in base.items() if k not in ("host", "port")} | settings
    # Another server: never the configured password (nor PGPASSWORD, which libpq would add): its own .pgpass line.
    return {k: v for k, v in base.items() if k not in ("host", "port", "password")} | settings | {"password": ""}


def _configured_endpoint(base: dict[str, str]) -> tuple[str, str, str]:
    """(host, hostaddr, port) the usual target connects to: DB_* first, else libpq's defaults (PG*, PGSERVICE)."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    from psycopg import pq

    defaults = {o.keyword.decode(): (o.val or b"").decode() for o in pq.Conninfo.get_defaults()}
    if base.get("host"):
        host, hostaddr = base["host"], ""
    else:
        host, hostaddr = defaults.get("host", ""), defaults.get("hostaddr", "")
    return host, hostaddr, base.get("port") or defaults.get("port") or "5432"


def _same_endpoint(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    def norm(endpoint: tuple[str, str, str]) -> tuple[str, ...]:
        host, hostaddr, port = (part.strip().lower() for part in endpoint)
        return host, hostaddr, port or "5432"

    return norm(a) == norm(b)


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
        try:  # a URL that is not one (`redis//:pw@host`) is all path: never shown, it may hold the password
            parts = urlsplit(str(settings["url"]))
            if parts.scheme == "unix":
                return f"unix:{parts.path}"
            if parts.scheme not in ("redis", "rediss") or not parts.hostname:
                return "redis (bad REDIS_URL: use redis://host:port/db)"
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


def grafana_settings() -> tuple[str, str]:
    """Grafana's base URL (GRAFANA_URL, e.g. http://grafana:3000) and the token the daily baseline's annotation is
    posted with (GRAFANA_TOKEN: a service account token, a secret like any other, scrubbed from every artifact).
    NotConfigured (check `grafana.configured`) when either is missing."""
    url, token = os.environ.get("GRAFANA_URL", "").strip(), os.environ.get("GRAFANA_TOKEN", "").strip()
    if not url or not token:
        missing = " and ".join(n for n, v in (("GRAFANA_URL", url), ("GRAFANA_TOKEN", token)) if not v)
        raise NotConfigured(f"no Grafana: set {missing} to post the baseline annotation", check="grafana.configured")
    return url.rstrip("/"), token


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


def tls_endpoints(environ: dict[str, str] | None = None) -> list[str]:
    """host:port endpoints whose certificates to check: IMSNB_TLS_ENDPOINTS (comma-separated), else the API's
    host on 443 when IMSNB_API_URL is https."""
    environ = os.environ if environ is None else environ
    listed = [e.strip() for e in environ.get("IMSNB_TLS_ENDPOINTS", "").split(",") if e.strip()]
    if listed:
        return listed
    url = environ.get("IMSNB_API_URL", "")
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
# configured when its credentials or a profile resolve (`aws_configured`), never by default: a run that reached
# nothing must not read as an all-clear.
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
# Variables that make boto3's chain resolve credentials (a profile, keys, a web identity, a container's role). Without
# them the chain's files, SSO, credential_process and instance metadata are asked (`aws_configured`).
AWS_CREDENTIAL_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
NOT_CONFIGURED = {
    "postgres": "no PostgreSQL target: set PGHOST (and PGPORT, PGDATABASE, PGUSER), or DB_HOST, DB_NAME, DB_USER",
    "redis": "no Redis target: set REDIS_URL, or REDIS_HOST (and REDIS_PORT, REDIS_PASSWORD)",
    "api": "no API target: set IMSNB_API_URL (e.g. https://api.ims-2.0.com) or API_HOST",
    "prometheus": "no Prometheus target: set PROMETHEUS_URL (e.g. http://prometheus:9090)",
    "aws": "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION)",
    "tls": "no TLS endpoint: pass -p endpoints host:port, or set IMSNB_TLS_ENDPOINTS or an https IMSNB_API_URL",
}
# The variables to name first when a target is missing, in a one-line hint ("set DB_HOST/PGHOST, REDIS_URL/...").
TARGET_NAMES = {
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "api": "API",
    "prometheus": "Prometheus",
    "aws": "AWS",
    "tls": "TLS",
    "host": "host",
}
SHORT_HINTS = {
    "postgres": "DB_HOST/PGHOST",
    "redis": "REDIS_URL/REDIS_HOST",
    "api": "IMSNB_API_URL/API_HOST",
    "prometheus": "PROMETHEUS_URL",
    "aws": "AWS_PROFILE/AWS_ACCESS_KEY_ID",
    "tls": "IMSNB_TLS_ENDPOINTS or -p endpoints host:port",
}


def target_configured(target: str, environ: dict[str, str] | None = None) -> bool:
    """Whether a target (postgres, redis, api, prometheus, aws, tls) is configured: one of its variables set, for
    AWS credentials or a profile that resolve, for TLS an endpoint (`tls_endpoints`; a notebook's `endpoints`
    parameter is the runner's to add); `host` is this machine, always there."""
    environ = os.environ if environ is None else environ
    if target == "aws":
        return aws_configured(environ)
    if target == "tls":
        return bool(tls_endpoints(environ))
    names = TARGET_VARIABLES.get(target)
    return names is None or any(environ.get(name) for name in names)


def aws_configured(environ: dict[str, str] | None = None) -> bool:
    """Whether boto3 would find credentials: a profile or keys in `environ`, else its own chain (the shared files,
    SSO, credential_process, a container's or an instance's role; the instance metadata lookup costs up to a
    second or two off EC2, paid only when nothing else answers). A chain that fails while resolving (an expired SSO
    token, a broken profile) counts as configured: that is a finding for the run to show, not a target to skip."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in AWS_CREDENTIAL_VARIABLES):
        return True
    try:
        # lazy: botocore/boto3 (~0.5-2 s to import) only where AWS is called
        import botocore.session

        return botocore.session.Session().get_credentials() is not None
    except Exception:  # noqa: BLE001 - botocore's many config errors all mean "configured, but broken"
        return True


def nothing_checked_message(targets: list[str] | tuple[str, ...], what: str = "") -> str:
    """The one line for a run that would check nothing, naming the variables that would give it a target."""
    hints = ", ".join(SHORT_HINTS[t] for t in targets if t in SHORT_HINTS)
    where = f" for {what}" if what else ""
    return f"NOTHING CHECKED: no target configured{where} (set {hints}, or -p environment NAME)"


def postgres_configured() -> None:
    """Raises NotConfigured (check `postgres.configured`) when no PG* or DB_* variable names a server."""
    if not target_configured("postgres"):
        raise NotConfigured(NOT_CONFIGURED["postgres"], check="postgres.configured")


def target_label(target: str, environ: dict[str, str] | None = None) -> str:
    """Where a target is, for people reading a report's header (never a password or a query string): "PostgreSQL
    db.internal:5432/ims as imsnb_monitor", "Redis cache:6379/0", "AWS us-east-1 (profile prod)", "not configured"."""
    environ = os.environ if environ is None else environ
    name = TARGET_NAMES.get(target, target)
    if not target_configured(target, environ):
        return f"{name}: not configured"
    get = environ.get
    if target == "postgres":
        where = f"{get('DB_HOST') or get('PGHOST') or 'localhost'}:{get('DB_PORT') or get('PGPORT') or '5432'}"
        where += f"/{get('DB_NAME') or get('PGDATABASE') or '?'}"
        user = get("DB_USER") or get("PGUSER")
        return f"{name} {where}" + (f" as {user}" if user else "") if not get("PGSERVICE") else f"{name} service"
    if target == "redis":
        url = get("REDIS_URL")
        where = _host_port(url, 6379) if url else f"{get('REDIS_HOST')}:{get('REDIS_PORT') or 6379}"
        return f"{name} {where}"
    if target in ("api", "prometheus"):
        url = get("IMSNB_API_URL") or (f"http://{get('API_HOST')}:{get('API_PORT') or 8000}" if target == "api" else "")
        url = get("PROMETHEUS_URL") if target == "prometheus" else url
        return f"{name} {_host_port(url, None, scheme=True)}"
    if target == "aws":
        region = get("AWS_REGION") or get("AWS_DEFAULT_REGION") or "default region"
        extra = [f"profile {get('AWS_PROFILE')}"] if get("AWS_PROFILE") else []
        if get("AWS_ENDPOINT_URL"):
            extra.append(f"endpoint {_host_port(get('AWS_ENDPOINT_URL'), None, scheme=True)}")
        return f"{name} {region}" + (f" ({', '.join(extra)})" if extra else "")
    if target == "tls":
        return f"{name} {', '.join(tls_endpoints(environ))}"
    if target == "host":
        return f"host {socket.gethostname()}"
    return name


def _host_port(url: str | None, default_port: int | None, *, scheme: bool = False) -> str:
    """scheme://host:port/path of a URL without its user, password or query; the URL's text cut at '@'/'?' if it
    does not parse."""
    try:
        parts = urlsplit(str(url or ""))
        port = parts.port or default_port
        host = f"{parts.hostname}" + (f":{port}" if port else "")
        path = parts.path if parts.path not in ("", "/") else ""
        return (f"{parts.scheme}://" if scheme and parts.scheme else "") + host + path
    except ValueError:
        return str(url).split("@")[-1].split("?")[0]
