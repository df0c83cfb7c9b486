"""Parameter and window parsing: typed values or one-line refusals, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from imsnb.errors import BadParameter
from imsnb.runs.catalogue import Parameter, load_info, parse_parameters
from imsnb.runs.parameters import check_incident_id, coerce, validate
from imsnb.window import parse_duration, resolve_window

INFO = load_info(ROOT / "notebooks" / "db_performance.ipynb")


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("int", "7", 7),
        ("float", "2.5", 2.5),
        ("float", "3", 3.0),
        ("bool", "yes", True),
        ("bool", "off", False),
        ("list", "a, b", ["a", "b"]),
        ("list", '["x", 1]', ["x", 1]),
        ("str", "plain", "plain"),
    ],
)
def test_coerce_to_declared_type(kind, raw, value):
    assert coerce(Parameter("p", kind, None if kind == "str" else value), raw) == value


def test_optional_parameters_accept_none():
    assert coerce(Parameter("start", "str", None), "") is None
    assert coerce(Parameter("start", "str", None), "2026-02-08T15:30:00Z") == "2026-02-08T15:30:00Z"


@pytest.mark.parametrize("raw", ["1.5", "nan", "", "1e3", "True"])
def test_int_refuses_non_integers(raw):
    with pytest.raises(BadParameter, match="must be a int"):
        coerce(Parameter("top_n", "int", 10), raw)


@pytest.mark.parametrize("name", ["password", "db_password", "api_key", "key", "GITHUB_TOKEN", "aws_secret", "dsn"])
def test_secret_names_refused(name):
    with pytest.raises(BadParameter, match="looks like a secret"):
        validate(INFO, {name: "x"})


@pytest.mark.parametrize("value", ["redis://:pw@cache:6379/0", "host=db password=pw", "AKIAABCDEFGHIJKLMNOP"])
def test_secret_values_refused(value):
    with pytest.raises(BadParameter, match="looks like"):
        validate(INFO, {"environment": value})


def test_window_and_explicit_range():
    now = datetime(2026, 2, 8, 15, 30, tzinfo=UTC)
    assert resolve_window("30m", now=now).start == now - timedelta(minutes=30)
    span = resolve_window(None, "2026-02-08T14:00:00Z", "2026-02-08T15:00:00+00:00")
    assert span.seconds == 3600
    with pytest.raises(BadParameter, match="not before end"):
        resolve_window(None, "2026-02-08T15:00:00Z", "2026-02-08T14:00:00Z")
    with pytest.raises(BadParameter, match="out of range"):
        parse_duration("0m")


def test_incident_ids_are_path_safe():
    assert check_incident_id("INC-1234") == "INC-1234"
    for bad in ("../x", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(BadParameter):
            check_incident_id(bad)


def test_parameters_cell_parsing_keeps_help_after_strings_with_hashes():
    params = parse_parameters('pattern = "a#b"  # the help\ncount = 3\nflag = False  # on or off\n')
    assert params["pattern"].help == "the help" and params["pattern"].default == "a#b"
    assert (params["count"].type, params["flag"].type, params["flag"].help) == ("int", "bool", "on or off")


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(INFO.parameters) + ["x", "window", "db_password"]), raw=st.text(max_size=40))
def test_any_input_is_typed_or_refused_with_one_line(name, raw):
    try:
        values = validate(INFO, {name: raw})
    except BadParameter as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    declared = INFO.parameters[name]
    value = values[name]
    expected = {"str": str, "int": int, "float": float, "bool": bool, "list": list}[declared.type]
    assert value is None and declared.optional or isinstance(value, expected)
