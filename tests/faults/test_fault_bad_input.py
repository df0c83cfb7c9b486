"""Guarantee 7: any input is accepted with a well-typed value or refused with exit 2 and one line; never a
traceback, never a file under outputs/. Parameter values reach SQL only as bind parameters.

The property tests drive the real CLI (`imsnb.cli.main`) in-process. When the input is accepted, the kernel is
not started: `execute._execute` is replaced by a function that records the typed parameters the run would have
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

from imsnb import postgres
from imsnb.cli import main
from imsnb.runs import execute
from imsnb.runs.catalogue import list_notebooks
from imsnb.runs.parameters import coerce
from imsnb.window import parse_duration, parse_instant, resolve_window

NOTEBOOKS = {info.name: info for info in list_notebooks()}
PYTHON_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list}
INJECTION = "'; DROP TABLE orders; --"
REAL_EXECUTE = execute._execute
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class WouldExecute(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, params: dict, timeout_s: float):
        self.params = params
        self.timeout_s = timeout_s


def _stop_before_kernel(path, output, params, timeout_s, *_, **__):  # allow_actions, journal=, kernels=
    raise WouldExecute(params, timeout_s)


@pytest.fixture(scope="module", autouse=True)
def no_kernel():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute, "_execute", _stop_before_kernel)
        patch.setenv("IMSNB_WARM_KERNELS", "0")  # no warm parent either: these runs never reach a kernel
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
    monkeypatch.setattr(execute, "_execute", REAL_EXECUTE)  # this one runs the real kernel
    for knob in ("slow_query_ms", "long_running_s", "idle_in_transaction_s", "top_n"):
        code, stderr, _ = cli(["run", "db_performance", "-p", knob, f"1{INJECTION}", "--outputs", str(tmp_path)])
        assert code == 2 and knob in stderr
    with postgres.Database("fault-tests") as db:
        with pytest.raises(ValueError):  # the library's functions make numbers of their knobs first
            postgres.slow_queries(db, min_mean_ms=INJECTION)
        # and its SQL constants take values only as bind parameters: the server sees a bad number, not SQL
        with pytest.raises(Exception, match="invalid input syntax"):
            db.frame(postgres.RUNNING_QUERIES, {"min_duration_s": INJECTION, "limit": 5})
    result = execute.run_notebook(
        "db_performance", {"window": "30m", "rds_instance": INJECTION}, incident_id="INC-SQLI", outputs=tmp_path
    )
    summary = read_summary(result.folder)
    assert summary["status"] == "ok" and summary["parameters"]["rds_instance"] == INJECTION
    with degraded.postgres.admin("ims") as admin:
        assert admin.execute("SELECT count(*) FROM orders").fetchone()[0] > 0


# --- notebook files: `imsnb run PATH` and `imsnb suite PATH` read them before any kernel starts -------------------

TEMPLATE = (NOTEBOOKS["health_check"].path).read_text(encoding="utf-8")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
source_texts = st.text(max_size=60) | st.sampled_from(
    ['window = "1h', "x = (", "window = '1h'\n\x00", "def f(:", "window = {[]: 1}", "if True:\nwindow = 1", "((((" * 60]
)


def _mutated(kind: str, value, text: str) -> str:
    """The template notebook broken one way: a random JSON value put where the structure expects something."""
    import json

    nb = json.loads(TEMPLATE)
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    if kind == "document":
        return json.dumps(value)
    if kind == "cells":
        nb["cells"] = value
    elif kind == "no cells":
        del nb["cells"]
    elif kind == "a cell":
        nb["cells"][len(nb["cells"]) // 2] = value
    elif kind == "cell source":
        nb["cells"][0]["source"] = value
    elif kind == "parameters source":
        params["source"] = text
    elif kind == "tags":
        params["metadata"]["tags"] = value
    elif kind == "nbformat":
        nb["nbformat"] = value
    elif kind == "metadata":
        nb["metadata"] = value
    return json.dumps(nb)


def run_file(command: str, content: bytes | str, tmp: Path) -> tuple[int | None, str, Path]:
    path = tmp / "candidate.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    outputs = tmp / "outputs"
    code, stderr, _ = cli([command, str(path), "--outputs", str(outputs)])
    return code, stderr, outputs


def check_file_outcome(code, stderr: str, outputs: Path, accepted_writes: bool = False) -> None:
    assert "Traceback" not in stderr, stderr
    if code is None:  # accepted: the kernel would have started
        return
    assert code == 2, (code, stderr)
    assert stderr.startswith("imsnb: error: ") and stderr.count("\n") == 1, stderr
    assert not outputs.exists() or not any(outputs.rglob("*")), "bad input wrote something under outputs/"


@EXAMPLES
@example(command="run", kind="document", value=[], text="")  # `[]`: was a TypeError traceback, exit 1
@example(command="run", kind="parameters source", value=None, text='window = "1h')  # was a SyntaxError traceback
@example(command="suite", kind="parameters source", value=None, text="x = (")
@given(
    command=st.sampled_from(["run", "suite"]),
    kind=st.sampled_from(
        ["document", "cells", "no cells", "a cell", "cell source", "parameters source", "tags", "nbformat", "metadata"]
    ),
    value=json_values,
    text=source_texts,
)
def test_any_notebook_file_is_accepted_or_refused_in_one_line(tmp_path_factory, command, kind, value, text):
    tmp = tmp_path_factory.mktemp("nb")
    code, stderr, outputs = run_file(command, _mutated(kind, value, text), tmp)
    check_file_outcome(code, stderr, outputs)


@EXAMPLES
@example(content=b"")
@example(content=b"\xff\xfe{")
@example(content=b'{"cells": [], "nbformat": 4')
@given(content=st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_any_bytes_as_a_notebook_file_are_refused_in_one_line(tmp_path_factory, content):
    tmp = tmp_path_factory.mktemp("nb")
    code, stderr, outputs = run_file("run", content, tmp)
    assert code == 2, (code, stderr)
    check_file_outcome(code, stderr, outputs)


@pytest.mark.parametrize("given_as", ["missing.ipynb", "folder.ipynb", "notes.txt", "sub/missing"])
def test_a_notebook_path_that_is_not_a_notebook_file_is_named_in_one_line(tmp_path, monkeypatch, given_as):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.ipynb").mkdir()
    (tmp_path / "notes.txt").write_text("{}")
    code, stderr, _ = cli(["run", given_as, "--outputs", str(tmp_path / "outputs")])
    assert code == 2 and stderr.count("\n") == 1 and repr(given_as) in stderr, stderr
    assert not (tmp_path / "outputs").exists()


def test_a_catalogue_name_with_its_suffix_runs_that_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no such file here: the catalogue's health_check
    code, stderr, params = cli(["run", "health_check.ipynb", "--outputs", str(tmp_path / "outputs")])
    assert code is None and params is not None, stderr


@pytest.mark.parametrize("timeout", ["inf", "nan", "0", "-5"])
def test_suite_refuses_a_bad_timeout_before_any_progress_or_file(tmp_path, timeout):
    """`imsnb suite health_check --timeout inf` printed progress and wrote index.html, then exited 2."""
    out, err = io.StringIO(), io.StringIO()
    outputs = tmp_path / "outputs"
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["suite", "health_check", "--timeout", timeout, "--outputs", str(outputs)])
    assert code == 2 and err.getvalue().count("\n") == 1 and "timeout" in err.getvalue(), err.getvalue()
    assert out.getvalue() == "", out.getvalue()
    assert not outputs.exists()
