"""Which store imsnb keeps its memory in, from one URL, and the one store it must never be: the database it diagnoses.

    IMSNB_STATE_URL   sqlite:///ABSOLUTE/PATH  or  postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]
    [state] url       the same in imsnb.toml (without a password: that goes in ~/.pgpass or IMSNB_STATE_URL)
    IMSNB_HISTORY     a path: the SQLite store of counters, baselines and plans only (before IMSNB_STATE_URL)

IMSNB_STATE_URL (or `[state] url`) names a *shared* store: the notification state and the run catalogue live in it
too, so several workers with different outputs folders remember as one. Without either, the history is today's
SQLite file (IMSNB_HISTORY, else outputs/.history.sqlite) and the notification state and the incident folders stay
in each outputs folder.

The URL is a secret (its user and password, a query's password): it is never printed; messages name the store by
`StoreUrl.name` (scheme, host, port and database only), and `imsnb.config.secret_values` scrubs the URL from every
artifact.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from imsnb import config
from imsnb.config import config_file, read_toml, secret_in_value
from imsnb.errors import BadParameter, NotConfigured

STATE_URL_ENV = "IMSNB_STATE_URL"
HISTORY_ENV = "IMSNB_HISTORY"
ALLOW_TARGET_ENV = "IMSNB_STATE_ALLOW_TARGET"
SQLITE, POSTGRES = "sqlite", "postgresql"
SCHEMES = {"sqlite": SQLITE, "postgresql": POSTGRES, "postgres": POSTGRES}
STATE_KEYS = frozenset({"url"})
FORMS = "sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DATABASE"
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "localhost.localdomain"})


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL. `name` is what messages say (never a user or password); `shared`: named by
    IMSNB_STATE_URL or `[state] url`, so it holds the notification state and the run catalogue as well."""

    dialect: str
    name: str
    path: Path | None = None  # SQLite
    conninfo: dict[str, str] = field(default_factory=dict, repr=False)  # PostgreSQL: libpq keywords (secret)
    shared: bool = False
    origin: str = ""  # where it was configured, for messages: "IMSNB_STATE_URL", "imsnb.toml [state] url", ...

    @property
    def endpoint(self) -> tuple[str, str, str]:
        """(host, port, database) of a PostgreSQL store, as compared with the diagnosed target."""
        info = self.conninfo
        return info.get("host") or info.get("hostaddr") or "", info.get("port") or "5432", info.get("dbname") or ""


def sqlite_default() -> Path:
    """IMSNB_HISTORY, else outputs/.history.sqlite in the repository: the store when no URL names one."""
    default = Path(__file__).resolve().parents[2] / "outputs" / ".history.sqlite"
    return Path(os.environ.get(HISTORY_ENV) or default)


def sqlite_store(path: Path | str, *, shared: bool = False, origin: str = "") -> StoreUrl:
    path = Path(path)
    return StoreUrl(SQLITE, str(path), path=path, shared=shared, origin=origin)


def parse_store_url(text: str, *, origin: str = STATE_URL_ENV, shared: bool = True) -> StoreUrl:
    """A store URL, or BadParameter naming what is wrong (never echoing the URL: it may hold a password)."""
    text = (text or "").strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    dialect = SCHEMES.get(scheme)
    if dialect is None:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise BadParameter(f"{origin} has {shown}: use {FORMS}")
    if dialect == SQLITE:
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.rstrip("/") == "":
            raise BadParameter(f"{origin}: a SQLite store is sqlite:///ABSOLUTE/PATH (three slashes, then the path)")
        return sqlite_store("/" + unquote(parts.path).lstrip("/"), shared=shared, origin=origin)
    return _postgres_store(text, origin=origin, shared=shared)


def _postgres_store(text: str, *, origin: str, shared: bool) -> StoreUrl:
    """libpq keywords from the URL alone: host, port, database and user come from it (never from the PG* variables,
    which describe the diagnosed target), and without a password in the URL, `password=''` makes libpq use the
    store's own ~/.pgpass line instead of PGPASSWORD (the target's)."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = {k: str(v) for k, v in conninfo_to_dict(text).items() if v is not None}
    except Exception:  # noqa: BLE001 - psycopg's message may quote the URL, password included
        raise BadParameter(f"{origin} is not a valid PostgreSQL URL: use {FORMS}") from None
    refused = sorted({"service", "passfile"} & set(info))
    if refused:
        raise BadParameter(f"{origin} names {', '.join(refused)}: give host, port, database and user in the URL")
    if not (info.get("host") or info.get("hostaddr")):
        raise BadParameter(f"{origin} names no host: use {FORMS}")
    if not info.get("dbname"):
        raise BadParameter(f"{origin} names no database: use {FORMS} (a database of the team's, not production's)")
    info.setdefault("port", "5432")
    info.setdefault("user", getpass.getuser())
    info.setdefault("password", "")
    host = info.get("host") or info.get("hostaddr")
    shown_host = f"[{host}]" if ":" in host else host
    name = f"postgresql://{shown_host}:{info['port']}/{info['dbname']}"
    return StoreUrl(POSTGRES, name, conninfo=info, shared=shared, origin=origin)


def configured_store() -> StoreUrl:
    """IMSNB_STATE_URL, else `[state] url` of imsnb.toml (both shared stores), else the SQLite file of IMSNB_HISTORY
    or outputs/.history.sqlite (the history only). BadParameter for a URL that cannot be used."""
    text = os.environ.get(STATE_URL_ENV, "").strip()
    if text:
        return parse_store_url(text, origin=STATE_URL_ENV)
    from_file = _toml_url()
    if from_file:
        return from_file
    return sqlite_store(sqlite_default(), origin=HISTORY_ENV if os.environ.get(HISTORY_ENV) else "default")


def _toml_url() -> StoreUrl | None:
    """`[state] url` of imsnb.toml, or None. A file that cannot be read at all is not this function's to report:
    what needs the rest of it (notifications, schedules, environments) says so; a plain run goes on."""

    path = config_file()
    if path is None or not path.is_file():
        return None
    try:
        section = read_toml(path).get("state")
    except NotConfigured:
        return None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise BadParameter(f"{path}: state must be a table ([state] with url = ...)")
    where = f"{config_file()}: [state]"
    unknown = sorted(set(section) - STATE_KEYS)
    if unknown:
        raise BadParameter(f"{where} has unknown key(s) {', '.join(unknown)}: only url")
    url = section.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BadParameter(f"{where} url must be a string: {FORMS}")
    what = secret_in_value(url)
    if what:
        raise BadParameter(
            f"{where} url holds a secret ({what}): put the password in ~/.pgpass, or the whole URL in {STATE_URL_ENV}"
        )
    return parse_store_url(url, origin="imsnb.toml [state] url")


def check_store(environ: dict[str, str] | None = None) -> StoreUrl:
    """The configured store, checked before a run or a recording: BadParameter for a URL that cannot be used or
    for the diagnosed database itself (`check_not_target`, with the run's environment `environ`)."""
    store = configured_store()
    check_not_target(store, environ)
    return store


def check_not_target(store: StoreUrl, environ: dict[str, str] | None = None) -> None:
    """BadParameter when a PostgreSQL store is the diagnosed target's own database (same host, port and database;
    localhost, 127.0.0.1, ::1 and a socket folder count as this machine): imsnb's writes must never land on the
    server it diagnoses. IMSNB_STATE_ALLOW_TARGET=1 allows it (a sandbox, a test)."""
    environ = os.environ if environ is None else environ
    if store.dialect != POSTGRES or environ.get(ALLOW_TARGET_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    target = diagnosed_endpoint(environ)
    if target is not None and _same(store.endpoint, target):
        raise BadParameter(
            f"{store.origin}: the store {store.name} is the database being diagnosed: give the team's own database "
            f"(or set {ALLOW_TARGET_ENV}=1 to allow it)"
        )


def diagnosed_endpoint(environ: dict[str, str]) -> tuple[str, str, str] | None:
    """(host, port, database) the PostgreSQL diagnostics connect to, from the runbook's DB_* and libpq's PG*
    variables (a host left unset is this machine's socket; a database left unset is the user's name), or None when
    no PostgreSQL target is configured."""

    if not config.target_configured("postgres", environ):
        return None

    def pick(*names: str) -> str:
        return next((environ[n].strip() for n in names if environ.get(n, "").strip()), "")

    database = pick("DB_NAME", "PGDATABASE") or pick("DB_USER", "PGUSER") or getpass.getuser()
    return pick("DB_HOST", "PGHOST", "PGHOSTADDR"), pick("DB_PORT", "PGPORT") or "5432", database


def _same(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    def norm(endpoint: tuple[str, str, str]) -> tuple[str, str, str]:
        host, port, database = (part.strip() for part in endpoint)
        host = host.lower().strip("[]")
        local = host in LOCAL_HOSTS or host.startswith("/")  # a socket folder is this machine too
        return ("local" if local else host), port or "5432", database

    return norm(a) == norm(b)
