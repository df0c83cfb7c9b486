"""Which targets count as configured (`imsnb.config.targets`): AWS only when boto3's chain would find credentials
or a profile, never by default; TLS when an endpoint is named. Real botocore, real files, no network."""

from __future__ import annotations

import pytest

from imsnb import config

AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS variable, no ~/.aws files, no instance metadata lookup."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_aws_is_not_configured_by_default(no_aws):
    assert config.aws_configured() is False
    assert config.target_configured("aws") is False


@pytest.mark.parametrize(
    "variables",
    [
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0000", "AWS_SECRET_ACCESS_KEY": "x" * 20},
        {"AWS_PROFILE": "ims-readonly"},
        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"},
    ],
)
def test_aws_is_configured_by_keys_a_profile_or_a_role(no_aws, monkeypatch, variables):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert config.target_configured("aws") is True


def test_aws_credentials_in_the_shared_file_resolve(no_aws):
    (no_aws / "credentials").write_text("[default]\naws_access_key_id = AKIAEXAMPLE0000\naws_secret_access_key = x\n")
    assert config.aws_configured() is True


def test_a_profile_from_a_named_environment_counts(no_aws):
    assert config.target_configured("aws", {"AWS_PROFILE": "prod"}) is True


def test_tls_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("IMSNB_TLS_ENDPOINTS", raising=False)
    assert config.target_configured("tls", {}) is False
    assert config.target_configured("tls", {"IMSNB_API_URL": "http://api:8000"}) is False
    assert config.target_configured("tls", {"IMSNB_API_URL": "https://api.ims-2.0.com"}) is True
    assert config.target_configured("tls", {"IMSNB_TLS_ENDPOINTS": "db:5432"}) is True
    assert config.target_configured("host", {}) is True


def test_the_nothing_checked_line_names_what_to_set():
    text = config.nothing_checked_message(("postgres", "redis", "aws"), "health_check")
    assert text == (
        "NOTHING CHECKED: no target configured for health_check "
        "(set DB_HOST/PGHOST, REDIS_URL/REDIS_HOST, AWS_PROFILE/AWS_ACCESS_KEY_ID, or -p environment NAME)"
    )
