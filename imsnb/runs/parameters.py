"""Turn `-p NAME VALUE` strings into the typed values a notebook declares, or refuse them with one line.

Refused before any kernel starts: unknown names, wrong types, malformed windows and times, and anything that
looks like a secret (secrets come from the environment, never from parameters, which papermill writes verbatim
into the notebook).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from imsnb.errors import BadParameter
from imsnb.limits import check_max_backends, check_max_count, check_max_indexes
from imsnb.runs.catalogue import NotebookInfo, Parameter
from imsnb.scrub import check_not_secret
from imsnb.window import parse_duration, parse_instant, resolve_window

MAX_VALUE_LENGTH = 2000
MAX_SAMPLE_S = 600.0  # the counter sample: a run waits at most this long for it
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
# Parameter names refused outright; `key` only as the last word (api_key, key) so `key_pattern` stays usable.


def check_incident_id(incident_id: str) -> str:
    if not isinstance(incident_id, str) or not INCIDENT_ID.fullmatch(incident_id):
        raise BadParameter(
            f"incident id {incident_id!r} is not usable: use ASCII letters, digits, '.', '_' or '-' (max 64), "
            "e.g. INC-1234"
        )
    return incident_id


def coerce(param: Parameter, raw: Any) -> Any:
    """`raw` (a CLI string, or an already-typed value from Python) as the parameter's declared type."""
    name, kind = param.name, param.type
    if raw is None or (param.optional and isinstance(raw, str) and raw.strip().lower() in ("", "none", "null")):
        if param.optional:
            return None
        raise BadParameter(f"parameter {name!r} needs a {kind} value")
    if isinstance(raw, str) and (len(raw) > MAX_VALUE_LENGTH or "\x00" in raw):
        raise BadParameter(f"parameter {name!r} is too long or holds a NUL byte: at most {MAX_VALUE_LENGTH} characters")
    try:
        if kind == "bool":
            value = _to_bool(raw)
        elif kind == "int":
            value = _to_int(raw)
        elif kind == "float":
            value = _to_float(raw)
        elif kind == "list":
            value = _to_list(raw)
        else:
            value = raw if isinstance(raw, str) else None
            if value is None:
                raise ValueError
    except (ValueError, TypeError, OverflowError):
        raise BadParameter(f"parameter {name!r} must be a {kind} (default {param.default!r}), not {raw!r}") from None
    if name == "window":
        parse_duration(value)
    elif name == "sample_s" and not 0 <= value <= MAX_SAMPLE_S:
        raise BadParameter(f"sample_s {value!r} is out of range: use 0 (off) to {MAX_SAMPLE_S:g} seconds")
    elif name in ("start", "end", "before") and value is not None:
        parse_instant(value, name)
    return value


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", raw):
        return int(raw)
    raise ValueError


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError
    value = float(raw) if isinstance(raw, (int, float, str)) else float("nan")
    if not math.isfinite(value):
        raise ValueError
    return value


def is_positive_seconds(value: object) -> bool:
    """A timeout every run setting accepts (--timeout, a schedule's `timeout`): a positive, finite number of
    seconds (not a bool; nan and inf bound nothing)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _to_list(raw: Any) -> list:
    if isinstance(raw, list):
        return raw
    text = str(raw).strip()
    if text.startswith("["):
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def validate(info: NotebookInfo, raw: dict[str, Any]) -> dict[str, Any]:
    """The typed parameters for a run of `info`, or BadParameter naming the first problem."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        check_not_secret(name, value)
        if name not in info.parameters:
            known = ", ".join(info.parameters) or "none"
            raise BadParameter(f"notebook {info.name!r} has no parameter {name!r}: it takes {known}")
        values[name] = coerce(info.parameters[name], value)
    if {"window", "start", "end"} & set(values):
        merged = {
            k: values.get(k, info.parameters[k].default if k in info.parameters else None)
            for k in ("window", "start", "end")
        }
        resolve_window(merged["window"], merged["start"], merged["end"])
    return values


def check_bounds(parameters: dict[str, Any]) -> None:
    """The actions' hard limits on a run's parameters (max_backends, max_count, max_indexes), checked before a
    kernel starts."""
    if isinstance(parameters.get("max_backends"), int):
        check_max_backends(parameters["max_backends"])
    if isinstance(parameters.get("max_count"), int):
        check_max_count(parameters["max_count"])
    if isinstance(parameters.get("max_indexes"), int):
        check_max_indexes(parameters["max_indexes"])
