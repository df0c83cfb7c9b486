"""imsnb.toml: where it is (IMSNB_CONFIG, the current directory, the repository), its top-level tables, its
named environments (`[environments.NAME]`), which may set only where the targets are, and the third-party status
pages to read (`[status_pages]`) and the Jira project incidents are opened in (`[jira]`)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from imsnb.config.secrets import SECRET_ENV_NAME, secret_in_value, url_password
from imsnb.config.targets import AWS_NAMES, PROMETHEUS_NAMES
from imsnb.errors import NotConfigured


def config_file() -> Path | None:
    """imsnb.toml from IMSNB_CONFIG, else the current directory, else the repository root."""
    explicit = os.environ.get("IMSNB_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "imsnb.toml", Path(__file__).resolve().parents[2] / "imsnb.toml"):
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path) -> dict:
    """The whole file; a file that cannot be read or parsed is NotConfigured, saying why."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise NotConfigured(f"{path}: cannot read it: {' '.join(str(exc).split())}") from None


def toml_section(name: str) -> dict | None:
    """A top-level table of imsnb.toml (`[notify]`, `[oncall]`), or None when there is no file or no such table."""
    path = config_file()
    if path is None:
        return None
    data = read_toml(path)
    section = data.get(name)
    if section is not None and not isinstance(section, dict):
        raise NotConfigured(f"{path}: {name} must be a table ([{name}])")
    return section


# What a named environment may set: where the targets are, never a key, a journal or a bound of imsnb itself.
TARGET_SETTINGS = frozenset(
    {"DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "DB_SSLMODE"}
    | {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT"}
    | {"PGSSLKEY", "PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS"}
    | {"REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_USERNAME"}
    | {"IMSNB_API_URL", "API_HOST", "API_PORT", "PROMETHEUS_URL", "IMSNB_TLS_ENDPOINTS", "IMSNB_TLS_CA_FILE"}
    | {"GRAFANA_URL"}  # where the daily baseline's annotation goes (its token stays in the environment)
    | {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"}  # not AWS_ENDPOINT_URL: it would get signed requests
    | {variable for variable, _ in PROMETHEUS_NAMES.values()}
    | {variable for variable, _ in AWS_NAMES.values()}
)


def environment_settings(name: str) -> dict[str, str]:
    """The `[environments.NAME]` table of imsnb.toml (env-var names as keys), or NotConfigured saying why not.

    Secret-looking keys are refused: secrets belong in the environment or a secrets store, never in a file that
    travels with the notebooks. So is every key that is not a target setting (`TARGET_SETTINGS`): above all
    IMSNB_ALLOW_ACTIONS, the run key, which only `imsnb run --allow-actions` gives.
    """
    path = config_file()
    if path is None:
        raise NotConfigured(f"environment {name!r} needs an imsnb.toml (set IMSNB_CONFIG) with [environments.{name}]")
    data = read_toml(path)
    section = data.get("environments", {}).get(name)
    if not isinstance(section, dict):
        known = ", ".join(sorted(data.get("environments", {}))) or "none"
        raise NotConfigured(f"environment {name!r} is not in {path} (known: {known})")
    for key, value in section.items():
        if key.upper().startswith("IMSNB_ALLOW"):
            raise NotConfigured(
                f"{path}: [environments.{name}] {key} is refused: the run key comes only from "
                "`imsnb run --allow-actions` (or the environment an interactive kernel starts with)"
            )
        if SECRET_ENV_NAME.search(key):
            raise NotConfigured(f"{path}: [environments.{name}] {key} looks like a secret: set it in the environment")
        what = secret_in_value(str(value))
        if what:
            raise NotConfigured(
                f"{path}: [environments.{name}] {key} looks like a secret ({what}): set it in the environment"
            )
        if key not in TARGET_SETTINGS:
            raise NotConfigured(
                f"{path}: [environments.{name}] {key} is not a target setting: an environment may set only "
                "where the targets are (DB_*, PG*, REDIS_*, IMSNB_API_URL, PROMETHEUS_URL, AWS_REGION, ...)"
            )
    return {key: str(value) for key, value in section.items()}


def use_environment(name: str) -> dict[str, str]:
    """Apply a named environment of imsnb.toml to os.environ; "default" (or empty) changes nothing."""
    if not name or name == "default":
        return {}
    applied = environment_settings(name)
    os.environ.update(applied)
    return applied


_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
STATUS_PAGES_CHECK = "api.third_party_status"


def status_pages() -> dict[str, str]:
    """`[status_pages]` of imsnb.toml: a third party's name and its Statuspage-style status URL
    (`name = "https://status.example.com/api/v2/status.json"`), in the file's order; empty without a file or a
    table. A value that is not an http(s) URL, or one holding a password, is NotConfigured naming the key."""
    section = toml_section("status_pages") or {}
    pages = {}
    for name, url in section.items():
        where = f"{config_file()}: [status_pages] {name}"
        if not isinstance(url, str) or not _HTTP_URL.match(url.strip()):
            raise NotConfigured(
                f"{where} must be an http(s) URL such as https://status.example.com/api/v2/status.json",
                check=STATUS_PAGES_CHECK,
            )
        if url_password(url):
            raise NotConfigured(f"{where} holds a password: a status page is public", check=STATUS_PAGES_CHECK)
        pages[str(name)] = url.strip()
    return pages


JIRA_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")
JIRA_SEVERITIES = ("CRITICAL", "ERROR", "WARNING", "INFO", "OK")
JIRA_KEYS = frozenset({"project", "issue_type", "priorities"})


def jira_settings() -> dict:
    """`[jira]` of imsnb.toml, for `--ticket new`: `project` (a project key such as OPS, required), `issue_type`
    (default Task, which every Jira project has) and `priorities` (severity -> Jira priority name, merged over the
    escalation matrix's defaults). A missing or malformed value is NotConfigured naming the key and the fix."""
    section = toml_section("jira")
    where = f"{config_file() or 'imsnb.toml'}: [jira]"
    if section is None:
        raise NotConfigured(f'--ticket new needs [jira] project = "KEY" in {config_file() or "imsnb.toml"}')
    unknown = sorted(set(section) - JIRA_KEYS)
    if unknown:
        raise NotConfigured(f"{where} has unknown key(s) {', '.join(unknown)}: use {', '.join(sorted(JIRA_KEYS))}")
    project = section.get("project")
    if not isinstance(project, str) or not JIRA_PROJECT.match(project):
        raise NotConfigured(f'{where} project = {project!r} is not a Jira project key: use its key, such as "OPS"')
    issue_type = section.get("issue_type", "Task")
    if not isinstance(issue_type, str) or not issue_type.strip():
        raise NotConfigured(f'{where} issue_type must be an issue type\'s name, such as "Task" or "Incident"')
    priorities = section.get("priorities", {})
    if not isinstance(priorities, dict):
        raise NotConfigured(f'{where} priorities must be a table: {{ CRITICAL = "Highest", ERROR = "High" }}')
    names = {}
    for severity, name in priorities.items():
        if str(severity).upper() not in JIRA_SEVERITIES or not isinstance(name, str) or not name.strip():
            raise NotConfigured(
                f"{where} priorities.{severity} = {name!r}: map a severity ({', '.join(JIRA_SEVERITIES)}) "
                'to a Jira priority name such as "High"'
            )
        names[str(severity).upper()] = name.strip()
    return {"project": project, "issue_type": issue_type.strip(), "priorities": names}
