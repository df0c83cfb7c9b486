"""imsnb: executable incident-response notebooks for the IMS 2.0 runbook."""

from imsnb import _started as _started  # first: the run key is read once, before anything can change os.environ

__version__ = "0.1.0"
