"""A notebook's set-up cell in one call: the named environment, the window, the findings, the sessions the notebook
reads and the first counter snapshots.

    run = incident.begin(
        "redis_cache", incident_id=incident_id, environment=environment, window=window, start=start, end=end,
        sample_s=sample_s, cache=True,
    )
    findings, redis, sample = run.findings, run.cache, run.sample  # run.window: the incident window (a Window)

Every notebook has the same five shared parameters (incident_id, environment, window, start, end), and those that
read counters also `sample_s`; `begin` is what they mean, in one place. The sessions connect lazily (an unreachable
target becomes its section's finding), and the first snapshots are taken here, as early as the run can, so the
sample overlaps the sections.

This is the notebook layer, above every data source (postgres, cache, aws, sampling): nothing below imports it. It
imports the sources a notebook asks for lazily, so a notebook that reads only AWS never loads psycopg or redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imsnb import config
from imsnb.aws import Aws
from imsnb.bundles import WINDOW_MIME
from imsnb.cache import Cache
from imsnb.findings import Findings
from imsnb.postgres import Database
from imsnb.sampling import Sample
from imsnb.window import Window, resolve_window

if TYPE_CHECKING:
    from imsnb.aws import Aws
    from imsnb.cache import Cache
    from imsnb.postgres import Database
    from imsnb.sampling import Sample


@dataclass
class Incident:
    """What the set-up cell made: the findings to fill and the sessions (None where the notebook asked for none)."""

    id: str
    notebook: str
    window: Window  # the incident window the parameters describe (resolved: start and end)
    findings: Findings
    db: Database | None = None
    cache: Cache | None = None
    aws: Aws | None = None
    sample: Sample | None = None

    def close(self) -> None:
        """Close the database and Redis sessions (AWS clients hold no connection to close), and add what imsnb's
        store could not do during the run (a WARNING `host.state_store`: snapshots not written, history not
        read), so a run that went without its memory says so in its findings."""
        for session in (self.db, self.cache):
            if session is not None:
                session.close()
        if self.sample is not None:
            self.findings.add(self.sample.store_finding())


def begin(
    notebook: str,
    *,
    incident_id: str,
    environment: str = "default",
    window: str | None = "1h",
    start: str | None = None,
    end: str | None = None,
    sample_s: float = 0.0,
    db: bool = False,
    cache: bool = False,
    aws: bool = False,
) -> Incident:
    """Apply `environment`, resolve the window, open the sessions asked for (named `imsnb/<notebook>` on the servers)
    and, when `sample_s` > 0 and a database or Redis session is open, take the first counter snapshots.

    Shows one line: the incident id and the window (in a kernel with the window as a bundle the runner records in
    summary.json, so a run folder says which window it looked at).
    """
    config.use_environment(environment)
    resolved = resolve_window(window, start, end)
    run = Incident(id=incident_id, notebook=notebook, window=resolved, findings=Findings())
    if db:
        run.db = Database(notebook)
    if cache:
        run.cache = Cache(notebook)
    if aws:
        run.aws = Aws(notebook)
    if db or cache:
        run.sample = Sample(sample_s, db=run.db, cache=run.cache, window=resolved, taken_by=notebook)
    show_window(incident_id, resolved)
    return run


def show_window(incident_id: str, window: Window) -> None:
    """'Incident INC-7: window ...' printed; in a kernel, displayed with the window as a `WINDOW_MIME` bundle."""

    line = f"Incident {incident_id}: window {window}"
    try:
        # lazy: IPython is there only inside a kernel; the CLI and workers never load it
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(line)
        return
    utc = "%Y-%m-%dT%H:%M:%SZ"
    shown = {"start": f"{window.start:{utc}}", "end": f"{window.end:{utc}}", "incident_id": incident_id}
    display({"text/plain": line, WINDOW_MIME: shown}, raw=True)
