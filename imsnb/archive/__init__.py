"""The incident archive: one folder per incident, an index.html over its runs, listing, and upload to S3.

    outputs/<incident>/
        index.html          runs, time window, and a post-mortem section (rewritten after every run, atomically)
        postmortem.json     optional, written by people: root cause, impact, action items, ticket (shown in index;
                            with a shared store, the one written last on any worker)
        <time>-<notebook>/  one folder per run (see imsnb.runs.folder); `.archived` once uploaded: its S3 URLs

Everything shown comes from the runs' summary.json files, so the index can be rebuilt at any time
(`write_index`). The HTML is self-contained (inline CSS, no script, no network) and every value is escaped.

Where things are:

    (imsnb.runs.index: reading runs, this folder's and other workers' from a shared store's catalogue, each run's
     window, the timeline, post-mortem and ticket; render / write index.html: the runner rewrites it after every
     run, so it lives with the runs and this package only reads it)
    incidents.py  list, load and describe incidents (`imsnb archive list|show`)
    upload.py     S3 URL parsing, the upload of run folders (UploadFailed) and of the archive's index.html (every
                  run linked by its name in the archive)
"""

from imsnb.archive.incidents import Incident, describe_incident, list_incidents, load_incident
from imsnb.archive.upload import ARCHIVED, RUN_FILES, UploadFailed, parse_archive_url, upload
from imsnb.runs.index import (
    INDEX,
    POSTMORTEM,
    POSTMORTEM_FIELDS,
    TICKET,
    incident_postmortem,
    incident_runs,
    incident_window,
    read_postmortem,
    read_runs,
    read_ticket,
    render_index,
    run_window,
    ticket_key,
    timeline,
    worst,
    write_index,
)

__all__ = [
    "ARCHIVED",
    "INDEX",
    "POSTMORTEM",
    "POSTMORTEM_FIELDS",
    "RUN_FILES",
    "TICKET",
    "Incident",
    "UploadFailed",
    "describe_incident",
    "incident_runs",
    "incident_window",
    "list_incidents",
    "load_incident",
    "parse_archive_url",
    "incident_postmortem",
    "read_postmortem",
    "read_runs",
    "read_ticket",
    "ticket_key",
    "render_index",
    "run_window",
    "timeline",
    "upload",
    "worst",
    "write_index",
]
