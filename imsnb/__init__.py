"""imsnb: executable incident-response notebooks for the IMS 2.0 runbook."""

__version__ = "0.1.0"
