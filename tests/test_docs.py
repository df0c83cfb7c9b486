"""The README stays true: what it cites exists, the commands it shows take the options it shows, its tables match
the catalogues, and the one-line errors it promises are one line naming what to do."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys

import papermill
import pytest
from helpers import ROOT

from imsnb.cli import main
from imsnb.errors import BadParameter
from imsnb.notify.jira import check_ticket
from imsnb.runs.catalogue import list_notebooks
from imsnb.sandbox.scenarios import SCENARIOS

README = (ROOT / "README.md").read_text()
# Read by the library but not a user's setting: the journal file the runner hands the kernel.
INTERNAL_VARIABLES = {"IMSNB_ACTIONS_JOURNAL"}


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_first_column(section: str) -> list[str]:
    return re.findall(r"^\| `([\w-]+)` \|", section, re.M)


def _cited_tests() -> list[tuple[str, str]]:
    """(test file, test function) for every test the reliability table names, in the file it names."""
    cited = []
    for line in _section("Reliability and security").splitlines():
        if not line.startswith("| ") or "proved by" in line:
            continue
        cell = line.rstrip(" |").rsplit("|", 1)[-1]
        files = re.findall(r"`((?:tests/)?[\w/]*test_\w+\.py)", cell)
        assert files, f"a guarantee cites no test file: {line[:80]}"
        path = files[0] if files[0].startswith("tests/") else f"tests/faults/{files[0]}"
        for name in re.findall(r"`(?:[\w/]*\.py::)?(test_\w+)(?:\[[^\]]*\])?`", cell):
            cited.append((path, name))
        if not re.search(r"`(?:[\w/]*\.py::)?test_\w+", cell.replace(files[0], "")):
            cited.append((path, ""))  # a file cited as a whole: it must exist
    return cited


def test_every_test_the_reliability_table_cites_exists_in_the_file_it_names():
    cited = _cited_tests()
    assert len(cited) > 30
    for path, name in cited:
        assert (ROOT / path).is_file(), f"README cites {path}, which does not exist"
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {name}\(", source, re.M), f"README cites {path}::{name}, which is not there"


def test_every_fault_test_file_is_cited_by_the_reliability_table():
    section = _section("Reliability and security")
    for path in sorted((ROOT / "tests" / "faults").glob("test_fault_*.py")):
        assert f"`{path.name}`" in section, f"{path.name} proves no guarantee the README lists"


def _readme_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].split(" | ", 1)[0].split(" > ", 1)[0].strip()
            if line.startswith(".venv/bin/imsnb "):
                commands.append(shlex.split(line)[1:])
    return commands


def _help(command: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0, command
    return out.getvalue()


def _inline_commands() -> list[list[str]]:
    """`imsnb CMD ...` in the text, synopses across lines included; placeholders and brackets are not options."""
    spans = re.findall(r"`imsnb ([a-z][^`]*)`", README)
    return [re.findall(r"--[a-z][\w-]*|^[a-z-]+(?: (?:list|show|run|crontab)\b)?", span) for span in spans]


def test_every_readme_command_is_a_real_command_taking_the_options_shown():
    commands = _readme_commands()
    assert len(commands) >= 10
    for args in commands:
        path = args[:2] if args[0] in ("archive", "schedule") else args[:1]
        text = _help(path)
        for option in (a for a in args if a.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"`imsnb {path}` has no {option}"
    inline = _inline_commands()
    assert len(inline) >= 20
    for found in inline:
        path, options = found[0].split(), found[1:]
        text = _help(path)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"`imsnb {path}` has no {option}"


def test_every_catalogue_notebook_and_sandbox_scenario_has_its_readme_row():
    assert sorted(_table_first_column(_section("Notebooks"))) == sorted(i.name for i in list_notebooks())
    assert sorted(_table_first_column(_section("The sandbox"))) == sorted(SCENARIOS)


def test_every_variable_the_library_reads_is_in_the_readme():
    read = set()
    for path in (ROOT / "imsnb").rglob("*.py"):
        read |= set(re.findall(r"\bIMSNB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    undocumented = sorted(name for name in read - INTERNAL_VARIABLES if name not in README)
    assert not undocumented, f"README never names {undocumented}"


def test_plain_papermill_sees_every_parameter_imsnb_sees():
    """The README: 'run them with plain papermill: they take the same parameters'. papermill drops (with a warning)
    a parameter line with a second '=', e.g. in its comment."""
    for info in list_notebooks():
        seen = set(papermill.inspect_notebook(str(info.path)))
        differ = sorted(seen ^ set(info.parameters))
        assert not differ, f"{info.name}: papermill and imsnb disagree on {differ}"


def test_the_readme_configuration_examples_are_accepted_as_written(tmp_path, monkeypatch):
    from imsnb import notify
    from imsnb.runs.schedule import load_schedules

    schedules, notify_and_oncall = re.findall(r"```toml\n(.*?)```", README, re.S)
    config = tmp_path / "imsnb.toml"
    config.write_text(schedules + '\n[environments.prod]\nDB_HOST = "db.example.internal"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    assert list(load_schedules()) == ["prod_health"]
    config.write_text(notify_and_oncall)
    notify.check_ready("changes", ticket=None)


def test_an_unknown_argument_names_the_command_whose_help_lists_the_options(capsys):
    for args, command in (
        (["run", "health_check", "--ticket", "bad", "key"], "imsnb run --help"),
        (["archive", "list", "extra"], "imsnb archive list --help"),
        (["schedule", "crontab", "--cron"], "imsnb schedule crontab --help"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"(see `{command}`)" in err and err.count("see `") == 1, err


def test_ticket_without_jira_variables_is_one_line_naming_each_missing_variable_once(monkeypatch):
    for name in ("JIRA_URL", "JIRA_USER", "JIRA_API_TOKEN", "JIRA_DEPLOYMENT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BadParameter) as refused:
        check_ticket("OPS-1")
    message = str(refused.value)  # JIRA_USER only on Cloud: Server/Data Center take a personal access token alone
    assert message.startswith("--ticket needs JIRA_URL, JIRA_API_TOKEN in the environment")
    assert "\n" not in message and "JIRA_USER is the account's email" in message
    monkeypatch.setenv("JIRA_DEPLOYMENT", "cloud")
    with pytest.raises(BadParameter) as refused:
        check_ticket("OPS-1")
    assert str(refused.value).startswith("--ticket needs JIRA_URL, JIRA_USER, JIRA_API_TOKEN in the environment")
    monkeypatch.setenv("JIRA_URL", "https://jira.example.test")
    monkeypatch.setenv("JIRA_USER", "bot@example.test")
    with pytest.raises(BadParameter) as refused:
        check_ticket("OPS-1")
    assert str(refused.value).startswith("--ticket needs JIRA_API_TOKEN in the environment")


def test_fail_on_shows_the_severities_it_takes():
    text = _help(["run"])
    assert "--fail-on SEVERITY" in text
    assert "OK, INFO, WARNING, ERROR or CRITICAL" in " ".join(text.split())


@pytest.mark.parametrize(
    "name, value, needle",
    [
        ("IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED", "70%", "is not a number"),
        ("IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED_ERROR", "nan", "is not a number"),
        ("IMSNB_THRESHOLD_POSTGRES_CONECTIONS_USED", "0.7", "names no check with a threshold"),
    ],
)
def test_a_bad_threshold_variable_is_bad_input_before_a_kernel_starts(tmp_path, name, value, needle):
    """The README's variables table: IMSNB_THRESHOLD_<CHECK>[_ERROR|_CRITICAL]. A typo or a unit in it was a
    WARNING "check could not complete" in the middle of a run, or silently ignored."""
    proc = subprocess.run(
        [sys.executable, "-m", "imsnb.cli", "run", "health_check", "--outputs", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and name in proc.stderr and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_valid_threshold_variables_are_accepted():
    from imsnb.findings import check_threshold_overrides, threshold

    environ = {
        "IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED": "0.7",
        "IMSNB_THRESHOLD_API_ERROR_RATE_ERROR": "0.05",
        "IMSNB_THRESHOLD_POSTGRES_BLOCKED_QUERIES_CRITICAL": "86400",
        "IMSNB_THRESHOLD_CACHE_KEY_COUNTS": "",  # empty: not set
    }
    check_threshold_overrides(environ)
    assert threshold("api.error_rate").warning > 0


def test_crontab_is_installed_from_a_file_as_the_readme_says(capsys):
    """`imsnb schedule crontab | crontab -` installs an empty crontab when the command is refused (exit 2)."""
    assert "> imsnb.cron && crontab imsnb.cron" in _section("Schedules")
    assert main(["schedule", "crontab", "--log-dir", "/tmp/imsnb-logs"]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.startswith("# install:") and "crontab imsnb.cron" in header and "| crontab -`" in header
