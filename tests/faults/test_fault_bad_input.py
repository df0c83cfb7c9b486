"""Guarantee 7: any input is accepted with a well-typed value or refused with exit 2 and one line; never a
traceback, never a file under outputs/. Parameter values reach SQL only as bind parameters.

The property tests drive the real CLI (`imsnb.cli.main`) in-process. When the input is accepted, the kernel is
not started: `runner._execute` is replaced by a function that records the typed parameters the run would have
used and stops there, so hundreds of inputs take seconds. Everything before it (argparse, validation, the
outputs check) is the real code path.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
from helpers import read_summary
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imsnb import postgres, runner
from imsnb.cli import main
from imsnb.notebooks import list_notebooks
from imsnb.parameters import coerce
from imsnb.window import parse_duration, parse_instant, resolve_window

NOTEBOOKS = {info.name: info for info in list_notebooks()}
PYTHON_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list}
INJECTION = "'; DROP TABLE orders; --"
REAL_EXECUTE = runner._execute
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class WouldExecute(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, params: dict, timeout_s: float):
        self.params = params
        self.timeout_s = timeout_s


def _stop_before_kernel(path, output, params, timeout_s, *_):  # *_: allow_actions
    raise WouldExecute(params, timeout_s)


@pytest.fixture(scope="module", autouse=True)
def no_kernel():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "_execute", _stop_before_kernel)
        yield


def cli(argv: list[str]) -> tuple[int | None, str, dict | None]:
    """Exit code (None when accepted), what was printed on stderr, and the typed parameters when accepted."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return main(argv), err.getvalue(), None
        except WouldExecute as accepted:
            assert math.isfinite(accepted.timeout_s) and accepted.timeout_s > 0, accepted.timeout_s
            return None, err.getvalue(), accepted.params
        except SystemExit as exc:
            return exc.code, err.getvalue(), None


def check_outcome(code, stderr: str, params: dict | None, outputs: Path, notebook: str) -> None:
    assert not outputs.exists() or not any(outputs.rglob("*")), "bad input wrote something under outputs/"
    assert "Traceback" not in stderr
    if params is None:
        assert code == 2, (code, stderr)
        assert stderr.startswith("imsnb: error: ") and stderr.count("\n") == 1, stderr
        return
    declared = NOTEBOOKS[notebook].parameters
    for name, value in params.items():
        kind = declared[name].type
        if value is None:
            assert declared[name].optional, name
        else:
            assert type(value) is PYTHON_TYPES[kind], (name, kind, value)
        if kind == "float" and value is not None:
            assert math.isfinite(value)


texts = st.text(max_size=40) | st.sampled_from(["", " ", "1h", "-1m", "0s", "31d", "32d", "1e9", "nan", "inf"])
names = st.sampled_from(sorted({p for info in NOTEBOOKS.values() for p in info.parameters})) | st.text(max_size=12)


@EXAMPLES
@given(notebook=st.sampled_from(sorted(NOTEBOOKS)), name=names, value=texts)
def test_any_parameter_is_typed_or_refused_in_one_line(tmp_path_factory, notebook, name, value):
    outputs = tmp_path_factory.mktemp("out") / "outputs"
    code, stderr, params = cli(["run", notebook, "-p", name, value, "--outputs", str(outputs)])
    check_outcome(code, stderr, params, outputs, notebook)


@EXAMPLES
@given(window=texts, start=st.none() | texts, end=st.none() | texts, incident=st.none() | texts)
def test_any_window_and_incident_is_accepted_or_refused(tmp_path_factory, window, start, end, incident):
    outputs = tmp_path_factory.mktemp("out") / "outputs"
    argv = ["run", "db_performance", "-p", "window", window, "--outputs", str(outputs)]
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            argv += ["-p", name, value]
    if incident is not None:
        argv += ["--incident", incident]
    code, stderr, params = cli(argv)
    check_outcome(code, stderr, params, outputs, "db_performance")
    if params is not None:
        span = resolve_window(params["window"], params.get("start"), params.get("end"))
        assert span.start < span.end and span.start.tzinfo is not None


@EXAMPLES
@example(timeout="inf", fail_on="OK")  # an unbounded run is not a well-typed timeout
@given(timeout=texts | st.floats().map(str), fail_on=st.sampled_from(["OK", "info", "WARNING", "error"]) | texts)
def test_any_timeout_and_fail_on_is_accepted_or_refused(tmp_path_factory, timeout, fail_on):
    outputs = tmp_path_factory.mktemp("out") / "outputs"
    code, stderr, params = cli(
        ["run", "health_check", f"--timeout={timeout}", f"--fail-on={fail_on}", "--outputs", str(outputs)]
    )
    check_outcome(code, stderr, params, outputs, "health_check")


@EXAMPLES
@given(value=st.text(max_size=30) | st.integers() | st.floats() | st.booleans() | st.lists(st.text(max_size=5)))
def test_the_library_parsers_return_typed_values_or_bad_parameter(value):
    from imsnb.errors import BadParameter

    for parse in (parse_duration, parse_instant):
        try:
            parsed = parse(value)
        except BadParameter as exc:
            assert "\n" not in str(exc)
        else:
            assert parsed.total_seconds() > 0 if parse is parse_duration else parsed.tzinfo is not None
    for param in NOTEBOOKS["db_performance"].parameters.values():
        try:
            coerce(param, value)
        except BadParameter as exc:
            assert "\n" not in str(exc)


def test_sql_reaches_postgres_only_through_bind_parameters(degraded, monkeypatch, tmp_path):
    """Numeric knobs with an injection are refused; a string that does reach a run is data, never SQL."""
    monkeypatch.setattr(runner, "_execute", REAL_EXECUTE)  # this one runs the real kernel
    for knob in ("slow_query_ms", "long_running_s", "idle_in_transaction_s", "top_n"):
        code, stderr, _ = cli(["run", "db_performance", "-p", knob, f"1{INJECTION}", "--outputs", str(tmp_path)])
        assert code == 2 and knob in stderr
    with postgres.Database("fault-tests") as db:
        with pytest.raises(ValueError):  # the library's functions make numbers of their knobs first
            postgres.slow_queries(db, min_mean_ms=INJECTION)
        # and its SQL constants take values only as bind parameters: the server sees a bad number, not SQL
        with pytest.raises(Exception, match="invalid input syntax"):
            db.frame(postgres.RUNNING_QUERIES, {"min_duration_s": INJECTION, "limit": 5})
    result = runner.run_notebook(
        "db_performance", {"window": "30m", "rds_instance": INJECTION}, incident_id="INC-SQLI", outputs=tmp_path
    )
    summary = read_summary(result.folder)
    assert summary["status"] == "ok" and summary["parameters"]["rds_instance"] == INJECTION
    with degraded.postgres.admin("ims") as admin:
        assert admin.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
