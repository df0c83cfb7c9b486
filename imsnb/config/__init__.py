"""Where each target is, from the environment (the runbook's own variable names) and an optional imsnb.toml.

Secrets (passwords, tokens, keys) are read here and nowhere else: the diagnostics get connection settings from
these functions, and the runner asks `secret_values()` what to scrub from every artifact. Callers use the names
below as `config.X`:

    targets.py  connection settings and labels (postgres, redis), API, Prometheus and Grafana URLs (and Grafana's
                token), Prometheus series and AWS resource names, TLS endpoints; which targets are configured
    secrets.py  which values are secrets (`secret_values`, `SECRET_ENV_NAME`, `url_password`) and the one rule for
                a value that holds one, wherever it enters (`secret_in_value`)
    toml.py     imsnb.toml: where it is, its tables, its named environments (`use_environment`), `[status_pages]`,
                `[jira]`
"""

from imsnb.config.secrets import (
    MIN_SCRUB_LENGTH,
    SECRET_ENV_NAME,
    SECRET_QUERY_KEY,
    secret_in_value,
    secret_values,
    url_password,
)
from imsnb.config.targets import (
    AWS_CREDENTIAL_VARIABLES,
    AWS_NAMES,
    NOT_CONFIGURED,
    PROMETHEUS_NAMES,
    TARGET_VARIABLES,
    api_url,
    aws_configured,
    aws_name,
    grafana_settings,
    nothing_checked_message,
    postgres_configured,
    postgres_label,
    postgres_settings,
    postgres_settings_for,
    prometheus_name,
    prometheus_url,
    redis_label,
    redis_settings,
    target_configured,
    target_label,
    tls_ca_file,
    tls_endpoints,
)
from imsnb.config.toml import (
    TARGET_SETTINGS,
    config_file,
    environment_settings,
    jira_settings,
    read_toml,
    status_pages,
    toml_section,
    use_environment,
)

__all__ = [
    "AWS_CREDENTIAL_VARIABLES",
    "AWS_NAMES",
    "MIN_SCRUB_LENGTH",
    "NOT_CONFIGURED",
    "PROMETHEUS_NAMES",
    "SECRET_ENV_NAME",
    "SECRET_QUERY_KEY",
    "TARGET_SETTINGS",
    "TARGET_VARIABLES",
    "api_url",
    "aws_configured",
    "aws_name",
    "config_file",
    "environment_settings",
    "grafana_settings",
    "jira_settings",
    "nothing_checked_message",
    "postgres_configured",
    "postgres_label",
    "postgres_settings",
    "postgres_settings_for",
    "prometheus_name",
    "prometheus_url",
    "redis_label",
    "redis_settings",
    "secret_in_value",
    "secret_values",
    "status_pages",
    "target_configured",
    "target_label",
    "tls_ca_file",
    "tls_endpoints",
    "read_toml",
    "toml_section",
    "url_password",
    "use_environment",
]
