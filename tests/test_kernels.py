"""imsnb.runs.kernels: what the warm parent imports, and runs that print only what matters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from imsnb.runs.kernels import KERNEL_MODULES, notebook_imports, warm_set


def test_the_warm_set_is_what_the_notebooks_import(tmp_path):
    nb = tmp_path / "n.ipynb"
    cells = [
        {"cell_type": "markdown", "source": "import pandas  # prose, not code"},
        {"cell_type": "code", "source": ["from imsnb import actions, postgres\n", "import redis as r\n"]},
        {"cell_type": "code", "source": "def f(:\n  broken"},
        {"cell_type": "code", "source": "from imsnb.aws import rds\nfrom . import nothing"},
    ]
    nb.write_text(json.dumps({"cells": cells}))
    found = notebook_imports([nb, tmp_path / "missing.ipynb"])
    assert found == ["imsnb", "imsnb.actions", "imsnb.postgres", "redis", "imsnb.aws", "imsnb.aws.rds"]
    warm = warm_set(found)
    assert warm[: len(KERNEL_MODULES)] == list(KERNEL_MODULES)
    assert "pandas" not in warm, "nothing the notebooks do not import"
    assert {"imsnb.postgres", "redis", "boto3"} <= set(warm), "imsnb.aws imports boto3 lazily: warm it too"


def test_the_catalogue_warms_what_its_notebooks_use():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    warm = set(warm_set(notebook_imports(notebooks)))
    assert {"imsnb.findings", "imsnb.report", "imsnb.postgres", "boto3"} <= warm


@pytest.mark.servers  # an `imsnb run` on the session's sandbox
def test_a_run_prints_no_kernel_transport_warning(tmp_path):
    """Kernels talk over IPC: no '[IPKernelApp] WARNING | Kernel is running over TCP without encryption'."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "imsnb"), "run", "certificate_expiry", "--outputs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "without encryption" not in result.stderr and "IPKernelApp" not in result.stderr, result.stderr
