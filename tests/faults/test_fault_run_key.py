"""Guarantee 9: the run key cannot be forged. It reaches the kernel once, from the runner (`--allow-actions`), and
is read once when imsnb is imported: a named environment in imsnb.toml, a parameter or a later os.environ change
never turns it. Environment tables refuse every IMSNB_ALLOW* key and any key that is not a target setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from helpers import read_summary

from imsnb.cli import main
from imsnb.runs.execute import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ATTACK = ["-p", "environment", "prod", "-p", "apply_actions", "True", "-p", "approver", "mallory"]


def keyed_notebook(folder: Path, body: str) -> Path:
    """A notebook on the catalogue's kernel whose one code cell is `body` (imports imsnb first, as they all do)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = json.loads((NOTEBOOKS / "redis_cache.ipynb").read_text())["metadata"]
    params = nbformat.v4.new_code_cell('incident_id = "adhoc"  # ticket')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Forge the run key\n\n**When to use:** never; a fault-injection fixture."),
        nbformat.v4.new_code_cell("import os\n\nfrom imsnb import actions, config"),
        params,
        nbformat.v4.new_code_cell(textwrap.dedent(body)),
    ]
    path = folder / "forge.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def seeded(own_sandbox, on, monkeypatch):
    on(own_sandbox)
    monkeypatch.delenv("IMSNB_ALLOW_ACTIONS", raising=False)
    client = own_sandbox.redis.client()
    client.set("imsnb-test:forge", "x")
    return own_sandbox, client


def test_an_environment_table_that_sets_the_run_key_is_refused_and_nothing_is_flushed(
    seeded, tmp_path, capsys, monkeypatch
):
    sandbox, client = seeded
    before = client.dbsize()
    toml = tmp_path / "imsnb.toml"
    toml.write_text(f'[environments.prod]\nIMSNB_ALLOW_ACTIONS = "1"\nREDIS_PORT = "{sandbox.redis.port}"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(toml))
    outputs = tmp_path / "outputs"
    code = main(["run", "redis_cache", *ATTACK, "--outputs", str(outputs)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "IMSNB_ALLOW_ACTIONS" in err and "--allow-actions" in err, err
    assert not outputs.exists()
    assert client.dbsize() == before > 0


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("IMSNB_ALLOW_ACTIONS", "run key"),
        ("imsnb_allow_anything", "run key"),
        ("IMSNB_ACTIONS_JOURNAL", "not a target setting"),
        ("IMSNB_CELL_TIMEOUT_S", "not a target setting"),
        ("PATH", "not a target setting"),
        ("PYTHONSTARTUP", "not a target setting"),
        ("AWS_ENDPOINT_URL", "not a target setting"),  # signed requests and session tokens would go there
    ],
)
def test_environment_tables_take_only_target_settings(tmp_path, monkeypatch, capsys, key, said):
    toml = tmp_path / "imsnb.toml"
    toml.write_text(f'[environments.prod]\n{key} = "1"\nDB_HOST = "db"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(toml))
    outputs = tmp_path / "outputs"
    assert main(["run", "health_check", "-p", "environment", "prod", "--outputs", str(outputs)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and said in err, err
    assert not outputs.exists()


def test_a_later_os_environ_change_in_the_kernel_does_not_turn_the_run_key(seeded, tmp_path):
    """The root of the hole: what `config.use_environment` did (os.environ.update after the runner removed the
    key). Even if something puts IMSNB_ALLOW_ACTIONS=1 into the kernel's os.environ, no action is applied."""
    _, client = seeded
    before = client.dbsize()
    notebook = keyed_notebook(
        tmp_path,
        """
        os.environ["IMSNB_ALLOW_ACTIONS"] = "1"
        outcome = actions.execute([actions.flush_action(db=0)], apply_actions=True, approver="mallory")
        """,
    )
    result = run_notebook(str(notebook), {}, incident_id="INC-FORGE", outputs=tmp_path / "outputs")
    (flush,) = read_summary(result.folder)["actions"]
    assert flush["action"] == "redis_flushdb" and flush["status"] == "planned", flush
    assert "the run key is missing" in flush["detail"]
    assert client.dbsize() == before > 0


PROBE = "import os; from imsnb import actions; {before}print(actions.keys(True, 'jane').run)"


@pytest.mark.parametrize(
    ("started_with", "before", "expected"),
    [
        ("1", "", "True"),  # JupyterLab: IMSNB_ALLOW_ACTIONS=1 in the kernel's environment at start is the run key
        ("1", "os.environ.pop('IMSNB_ALLOW_ACTIONS'); ", "True"),  # held, whatever happens to os.environ later
        (None, "os.environ['IMSNB_ALLOW_ACTIONS'] = '1'; ", "False"),
        ("0", "os.environ['IMSNB_ALLOW_ACTIONS'] = '1'; ", "False"),
    ],
    ids=["interactive", "held", "set-later", "turned-later"],
)
def test_the_run_key_is_what_the_process_started_with(started_with, before, expected):
    env = {k: v for k, v in os.environ.items() if k != "IMSNB_ALLOW_ACTIONS"}
    if started_with is not None:
        env["IMSNB_ALLOW_ACTIONS"] = started_with
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected, out.stderr
