"""The CLI starts light: parsing a command and validating a run import none of the heavy libraries (they load in
the kernel, or in the warm parent while the run is prepared)."""

from __future__ import annotations

import json
import subprocess
import sys

from imsnb.sandbox import SCENARIO_NAMES, SCENARIOS

HEAVY = ("pandas", "psycopg", "redis", "boto3", "botocore", "matplotlib", "moto", "papermill", "nbconvert")


def test_the_scenario_names_the_cli_shows_are_the_scenarios():
    assert tuple(SCENARIOS) == SCENARIO_NAMES


def test_importing_the_cli_and_the_runner_loads_no_heavy_library():
    code = (
        "import sys, json; import imsnb.cli, imsnb.runs.execute; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == [], f"imported at CLI start-up: {loaded}"
