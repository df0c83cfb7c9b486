"""One rule for a value that holds a secret, wherever it enters: a `-p` parameter, an `[environments.NAME]` table,
a `[schedules.NAME]` table, the `[notify]` tables. A REDIS_URL with `?password=` was refused in `[schedules]` and
accepted in `[environments]`; now every place refuses the same values, and accepts the same clean ones."""

from __future__ import annotations

import json

import pytest

from imsnb import config
from imsnb.errors import BadParameter, NotConfigured
from imsnb.notify.routes import load_routes
from imsnb.runs.catalogue import find_notebook, load_info
from imsnb.runs.parameters import validate
from imsnb.schedule import load_schedules

SECRET_VALUES = {
    "query-password": "redis://cache.internal:6379/0?password=Zk9hunter2",
    "query-token": "https://api.internal/health?token=Zk9hunter2",
    "query-sslpassword": "postgresql://db/ims?sslmode=require&sslpassword=Zk9hunter2",
    "url-password": "redis://:Zk9hunter2@cache.internal:6379/0",
    "conninfo-password": "host=db dbname=ims password=Zk9hunter2",
    "conninfo-passfile": "host=db passfile=/home/x/.pgpass",
    "aws-key-id": "AKIAIOSFODNN7EXAMPLE",
}
CLEAN = "redis://cache.internal:6379/0?ssl_cert_reqs=required"


def places(tmp_path, value: str) -> dict[str, object]:
    """How each place answers `value`: the exception's message, or "accepted"."""
    quoted = json.dumps(value)
    found: dict[str, object] = {}

    def attempt(name, call) -> None:
        try:
            call()
            found[name] = "accepted"
        except (BadParameter, NotConfigured) as exc:
            found[name] = str(exc)

    path = tmp_path / "imsnb.toml"
    path.write_text(f"[environments.prod]\nREDIS_URL = {quoted}\n")
    attempt("environments", lambda: config.environment_settings("prod"))
    path.write_text(
        f'[schedules.h]\nnotebook = "health_check"\ncron = "0 * * * *"\nparameters = {{ health_path = {quoted} }}\n'
    )
    attempt("schedules", lambda: load_schedules(path))
    path.write_text(f"[notify.slack]\nchannel_note = {quoted}\n")
    attempt("notify", load_routes)
    info = load_info(find_notebook("health_check"))
    attempt("parameters", lambda: validate(info, {"health_path": value}))
    return found


@pytest.fixture
def toml(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSNB_CONFIG", str(tmp_path / "imsnb.toml"))
    return tmp_path


@pytest.mark.parametrize("value", SECRET_VALUES.values(), ids=SECRET_VALUES.keys())
def test_every_place_a_value_enters_refuses_the_same_secrets(toml, value):
    found = places(toml, value)
    accepted = [place for place, answer in found.items() if answer == "accepted"]
    assert accepted == [], found
    assert all("\n" not in str(answer) and "Zk9hunter2" not in str(answer) for answer in found.values()), found


def test_every_place_accepts_the_same_clean_value(toml):
    assert set(places(toml, CLEAN).values()) == {"accepted"}
