"""The README and the documentation site stay true: the site builds with `mkdocs build --strict` (a broken link or
anchor fails), the README stays a front door whose links resolve, what the pages cite exists, the commands they show
take the options they show, their tables match the catalogues, and the one-line errors they promise are one line
naming what to do."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
from helpers import ROOT

from imsnb.cli import main
from imsnb.errors import BadParameter
from imsnb.findings import CATALOGUE
from imsnb.notify.jira import check_ticket
from imsnb.runs.catalogue import list_notebooks
from imsnb.sandbox.scenarios import SCENARIOS
from imsnb.schedule import DEFAULT_TIMETABLE

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = {path.stem: path.read_text() for path in sorted(DOCS.glob("*.md"))}
EVERYTHING = "\n".join([README, *PAGES.values()])
README_MAX_LINES = 120
README_MAX_WIDTH = 160
# Read by the library but not a user's setting: the journal file the runner hands the kernel.
INTERNAL_VARIABLES = {"IMSNB_ACTIONS_JOURNAL"}


def _page(name: str) -> str:
    return PAGES[name]


def _section(page: str, title: str) -> str:
    return _page(page).split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_first_column(text: str) -> list[str]:
    return re.findall(r"^\| `([\w.-]+)` \|", text, re.M)


# --- the site -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it, with --strict: any warning (a link to a missing page or anchor, a page
    left out of the nav, a link outside docs/) aborts the build."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def test_the_site_builds_strictly_with_every_page(site):
    built = {path.stem for path in site.glob("*.html")} - {"404"}
    assert built == set(PAGES), f"pages and the site differ: {sorted(built ^ set(PAGES))}"


def test_the_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README has {len(lines)} lines: move the reference material to docs/"
    wide = [n for n, line in enumerate(lines, 1) if len(line) > README_MAX_WIDTH]
    assert not wide, f"README lines over {README_MAX_WIDTH} characters: {wide}"
    assert not [line for line in lines if line.startswith("|")], "tables belong in docs/, not in the README"
    assert "make demo" in README and "make test" in README and "## Paged? Start here" in README


def test_every_readme_link_resolves(site):
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    into_docs = [link for link in links if link.startswith("docs/")]
    assert len(into_docs) >= 10
    for link in links:
        assert not link.startswith("/"), f"README link {link} is absolute: make it relative to the repository"
        if "://" in link:
            continue
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"README links to {path}, which does not exist"
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), link
            html = (site / Path(path).relative_to("docs").with_suffix(".html")).read_text()
            assert f'id="{anchor}"' in html, f"README links to {link}: {path} has no heading #{anchor}"


def test_every_path_the_docs_cite_exists():
    """A file (`imsnb/runs/html.py`, `tests/faults/test_fault_runs.py::test_...`) or a folder (`imsnb/postgres/`);
    `imsnb/<notebook>`, an application_name, is no path."""
    spans = re.findall(r"`((?:imsnb|tests|bench|scripts|notebooks|docs)/[\w./-]*)(?:`|::|\[| )", EVERYTHING)
    cited = {s for s in spans if s.endswith("/") or "." in s.rsplit("/", 1)[1] or s.startswith("scripts/")}
    assert len(cited) > 40
    missing = sorted(path for path in cited if not (ROOT / path.rstrip(".")).exists())
    assert not missing, f"the docs cite paths that do not exist: {missing}"


def _code_lines(path: Path) -> list[str]:
    """A source file's lines, or a notebook's code cells' lines, each without its indentation."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    else:
        text = path.read_text()
    return [line.strip() for line in text.splitlines()]


def test_every_code_block_of_adding_a_check_is_an_excerpt_of_the_real_check():
    """The worked example is the real `postgres.dead_rows`: each Python block is a run of lines (indentation aside)
    of its module, its test, the catalogue or the notebook, so copying it copies code that runs and is tested."""
    sources = ["imsnb/postgres/vacuum.py", "tests/test_vacuum.py", "imsnb/findings/catalogue.py"]
    files = [_code_lines(ROOT / path) for path in sources] + [_code_lines(ROOT / "notebooks/db_performance.ipynb")]
    blocks = re.findall(r"^```python\n(.*?)^```$", _page("adding-a-check"), re.M | re.S)
    assert len(blocks) >= 8
    for block in blocks:
        lines = [line.strip() for line in block.splitlines()]
        found = any(lines == file[i : i + len(lines)] for file in files for i in range(len(file) - len(lines) + 1))
        assert found, f"docs/adding-a-check.md shows code that is in none of {sources} nor the notebook:\n{block}"


# --- reliability: every guarantee cites the tests that prove it -----------------------------------------------


def _cited_tests() -> list[tuple[str, str]]:
    """(test file, test function) for every test the reliability page names, in the file it names."""
    cited = []
    guarantees = _section("reliability", "Guarantees")
    proofs = re.findall(r"^Proved by (.*?)(?=\n\n|\Z)", guarantees, re.M | re.S)
    assert len(proofs) == len(re.findall(r"^\*\*\d+[a-z]?\.\*\* ", guarantees, re.M)), "a guarantee without proof"
    for cell in (" ".join(proof.split()) for proof in proofs):
        files = re.findall(r"`((?:tests/)?[\w/]*test_\w+\.py)", cell)
        assert files, f"a guarantee cites no test file: {cell[:80]}"
        path = files[0] if files[0].startswith("tests/") else f"tests/faults/{files[0]}"
        for name in re.findall(r"`(?:[\w/]*\.py::)?(test_\w+)(?:\[[^\]]*\])?`", cell):
            cited.append((path, name))
        if not re.search(r"`(?:[\w/]*\.py::)?test_\w+", cell.replace(files[0], "")):
            cited.append((path, ""))  # a file cited as a whole: it must exist
    return cited


def test_every_test_the_reliability_page_cites_exists_in_the_file_it_names():
    cited = _cited_tests()
    assert len(cited) > 30
    for path, name in cited:
        assert (ROOT / path).is_file(), f"docs/reliability.md cites {path}, which does not exist"
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {name}\(", source, re.M), f"docs cite {path}::{name}, which is not there"


def test_every_fault_test_file_is_cited_by_the_reliability_page():
    section = _section("reliability", "Guarantees")
    for path in sorted((ROOT / "tests" / "faults").glob("test_fault_*.py")):
        assert f"`{path.name}`" in section, f"{path.name} proves no guarantee docs/reliability.md lists"


# --- commands: every one shown is real and takes the options shown ---------------------------------------------


def _block_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", EVERYTHING, re.S):
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
    spans = re.findall(r"`(?:\.venv/bin/)?imsnb ([a-z][^`]*)`", EVERYTHING)
    return [re.findall(r"--[a-z][\w-]*|^[a-z-]+(?: (?:list|show|run|crontab|postmortem)\b)?", s) for s in spans]


def test_every_command_shown_is_a_real_command_taking_the_options_shown():
    commands = _block_commands()
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


def test_every_make_target_shown_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.M))
    shown = set(re.findall(r"(?:^|`)make ([a-z][\w-]*)", EVERYTHING, re.M))
    assert {"demo", "test", "lab", "docs", "lint"} <= shown
    assert not shown - targets, f"the docs show make targets the Makefile lacks: {sorted(shown - targets)}"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_bench_is_shown_with_its_own_usage():
    performance = _page("performance")
    for path in sorted((ROOT / "bench").glob("*.py")):
        usage = re.search(r"Usage: (\.venv/bin/python bench/\S+\.py(?: \[\w+\])*)", path.read_text())
        assert usage, f"{path.name} says no Usage"
        assert f"`{usage[1]}`" in performance, f"docs/performance.md does not show `{usage[1]}`"


# --- tables that mirror the code ---------------------------------------------------------------------------------


def test_every_catalogue_notebook_and_sandbox_scenario_has_its_row():
    assert sorted(_table_first_column(_page("notebooks"))) == sorted(i.name for i in list_notebooks())
    assert sorted(_table_first_column(_section("sandbox", "The scenarios"))) == sorted(SCENARIOS)


def _catalogue_row(check: str) -> str:
    entry = CATALOGUE[check]
    level = lambda x: "—" if x is None else f"{x:g}"  # noqa: E731
    cells = [f"`{check}`", "above" if entry.above else "below", level(entry.warning), level(entry.error)]
    cells += [level(entry.critical), entry.unit, entry.first.name, entry.source]
    return "| " + " | ".join(cells) + " |"


def test_every_threshold_of_the_catalogue_has_its_row_with_its_levels():
    table = _section("findings", "The threshold catalogue")
    for check in CATALOGUE:
        row = _catalogue_row(check)
        assert row in table, f"docs/findings.md: the threshold catalogue needs the row\n{row}"
    assert sorted(_table_first_column(table)) == sorted(CATALOGUE), "a row for a check that is not in CATALOGUE"


def test_the_default_timetable_is_the_one_shown():
    table = _page("schedules")
    shown = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", table, re.M))
    assert shown == DEFAULT_TIMETABLE


def test_every_variable_the_library_reads_is_on_the_configuration_page():
    read = set()
    for path in (ROOT / "imsnb").rglob("*.py"):
        read |= set(re.findall(r"\bIMSNB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    configuration = _page("configuration")
    undocumented = sorted(name for name in read - INTERNAL_VARIABLES if name not in configuration)
    assert not undocumented, f"docs/configuration.md never names {undocumented}"


def test_plain_papermill_sees_every_parameter_imsnb_sees():
    """docs/notebooks.md: 'run them with plain papermill: they take the same parameters'. papermill drops (with a
    warning) a parameter line with a second '=', e.g. in its comment."""
    for info in list_notebooks():
        seen = set(papermill.inspect_notebook(str(info.path)))
        differ = sorted(seen ^ set(info.parameters))
        assert not differ, f"{info.name}: papermill and imsnb disagree on {differ}"


def test_the_configuration_examples_are_accepted_as_written(tmp_path, monkeypatch):
    from imsnb import notify
    from imsnb.config.toml import environment_settings
    from imsnb.schedule import load_schedules

    def toml_blocks(page: str) -> list[str]:
        return re.findall(r"```toml\n(.*?)```", _page(page), re.S)

    [environments] = toml_blocks("configuration")
    [schedules] = toml_blocks("schedules")
    config = tmp_path / "imsnb.toml"
    config.write_text(schedules + "\n" + environments)  # the schedule's environment is the one documented
    monkeypatch.setenv("IMSNB_CONFIG", str(config))
    assert list(load_schedules()) == ["prod_health"]
    assert environment_settings("prod")["DB_HOST"] == "ims-postgres-db.example.internal"
    config.write_text("\n".join(toml_blocks("notifications")))  # [notify] and [oncall]
    notify.check_ready("changes", ticket=None)


# --- the one-line errors the pages promise -----------------------------------------------------------------------


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
    """docs/configuration.md: IMSNB_THRESHOLD_<CHECK>[_ERROR|_CRITICAL]. A typo or a unit in it was a
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


def test_crontab_is_installed_from_a_file_as_the_docs_say(capsys):
    """`imsnb schedule crontab | crontab -` installs an empty crontab when the command is refused (exit 2)."""
    assert "> imsnb.cron && crontab imsnb.cron" in _page("schedules")
    assert main(["schedule", "crontab", "--log-dir", "/tmp/imsnb-logs"]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.startswith("# install:") and "crontab imsnb.cron" in header and "| crontab -`" in header
