"""No secret reaches an artifact, whatever its spelling; ordinary-word passwords don't shred the artifact."""

from __future__ import annotations

import json

import pytest
from helpers import every_byte, read_summary

from imsnb.errors import BadParameter
from imsnb.runs.execute import run_notebook
from imsnb.scrub import scrub, scrub_tree


def test_every_spelling_of_a_secret_is_scrubbed():
    secret = "Ab\"c<d>e'f\\g&h p%"
    spelled = [
        secret,
        json.dumps(secret),
        repr(secret),
        "Ab&quot;c&lt;d&gt;e&#x27;f\\g&amp;h p%",
        "Ab\"c&lt;d&gt;e'f\\g&amp;h p%",
        json.dumps("Ab&quot;c&lt;d&gt;e&#x27;f\\g&amp;h p%"),
        "Ab%22c%3Cd%3Ee%27f%5Cg%26h%20p%25",
    ]
    for text in spelled:
        scrubbed = scrub(f"before {text} after", [secret])
        assert "Ab" not in scrubbed and "********" in scrubbed, text
    assert scrub_tree({"check": "x", "message": [secret]}, [secret], frozenset({"check"})) == {
        "check": "x",
        "message": ["********"],
    }


def test_a_secret_inside_a_list_parameter_is_refused(tmp_path):
    with pytest.raises(BadParameter, match="a URL with a password"):
        run_notebook("api_timeout", {"extra_targets": '["postgresql://u:hunter2x@db:5432"]'}, outputs=tmp_path)
    with pytest.raises(BadParameter, match="a URL with a password"):
        run_notebook("api_timeout", {"extra_targets": ["ok:1", "redis://:pw12345@cache:6379"]}, outputs=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_escaped_and_url_encoded_secrets_never_reach_the_run_folder(healthy_sandbox, use_env, monkeypatch, tmp_path):
    use_env(healthy_sandbox)
    awkward = "Ab\"c<d>e'f\\g&h"
    monkeypatch.setenv("IMSNB_API_URL", f"http://mon:p%40ssw0rd!@127.0.0.1:{healthy_sandbox.api.port}")
    monkeypatch.setenv("GRAFANA_TOKEN", awkward)
    result = run_notebook("health_check", {}, incident_id="INC-S", outputs=tmp_path)
    blob = every_byte(result.folder)
    for text in (
        "p%40ssw0rd!",
        "p@ssw0rd!",
        awkward,
        "Ab&quot;c",
        "c&lt;d&gt;e",
        healthy_sandbox.redis.password,
        healthy_sandbox.aws.secret_key,
    ):
        assert text.encode() not in blob, text
    assert b"********" in blob  # the API URL's password was in a message, and was scrubbed there
    assert result.summary == read_summary(result.folder), "the CLI prints the scrubbed summary"


def test_an_ordinary_word_password_does_not_shred_the_artifact(healthy_sandbox, use_env, monkeypatch, tmp_path):
    use_env(healthy_sandbox)
    monkeypatch.setenv("SMTP_PASSWORD", "postgres")  # an ordinary word that also occurs in the notebook's code
    result = run_notebook("health_check", {}, incident_id="INC-W", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert "postgres.reachable" in {f["check"] for f in summary["findings"]}
    assert any("ordinary word" in w for w in summary["warnings"])
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "postgres.Database(" in code
