"""The MIME types of the outputs the runner reads back from an executed notebook.

A module of constants, so the runner, the archive and the report renderer can name them without importing the
modules that produce them (and, through those, pandas and psycopg) into every CLI process.
"""

FINDINGS_MIME = "application/vnd.imsnb.findings+json"
ACTIONS_MIME = "application/vnd.imsnb.actions+json"
WINDOW_MIME = "application/vnd.imsnb.window+json"  # {"start", "end"}: the window the set-up cell resolved (UTC)
