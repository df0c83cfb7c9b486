"""imsnb: executable incident-response notebooks for the IMS 2.0 runbook."""

from imsnb import started_with as started_with  # first: the run key is read once, before anything can change os.environ

__version__ = "0.1.0"
