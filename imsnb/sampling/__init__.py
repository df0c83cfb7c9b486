"""Judge the incident, not the server's lifetime: cumulative counters sampled over the run.

    sample = sampling.Sample(sample_s, db=db, cache=redis, window=run.window, taken_by="db_performance")  # setup cell
    ...
    top = sample.statements()            # in a section: waits only for what remains of sample_s, then deltas

The first snapshot of every source is taken in the setup cell, the second when a section asks for it; findings are
judged on the difference (per-statement calls and time keyed by queryid, user and database; hit rates, evictions/s
and ops/s). A counter that went down between the snapshots (a restart or stats reset) is detected and said. With an
incident window, the window rule (`start.py`) says where the numbers start: statistics that started inside the window
are its figures (their totals since then); else a snapshot from the history store (`imsnb.history`) at or before the
window's start, else the earliest one inside it, replaces this run's first snapshot; only without any does the sample
stand alone, saying how much of the window it leaves out. With `sample_s=0` and nothing better, lifetime totals are
read, labelled "since restart".

Sources: pg_stat_statements (read without query text: text is fetched only for the statements shown),
pg_stat_database, pg_stat_user_tables, and Redis INFO stats + commandstats.

    deltas.py    the source names, two snapshots and the period between them, restart and reset notes
    postgres.py  PostgreSQL snapshots and deltas; regressed statements (slow ones, the database hit ratio and the
                 tables a statement read are judged in imsnb.postgres, given the period)
    own.py       imsnb's own footprint: its pg_stat_statements entries (left out of what is judged), the line
                 saying its share of the period's load, its buffer accesses taken out of the hit ratio
    plans.py     the statements' generic plans now against the stored ones (history, baseline): plan_change;
                 plan shapes stored by every run and every `imsnb record` round, only when they change
    cache.py     Redis INFO snapshots and deltas; hit rate, evictions, ops/s
    start.py     the window rule: where a window's numbers start (statistics' start, stored snapshots, the sample)
    sample.py    Sample (the snapshots of one run, the history store, the baseline), baseline_saved_finding and
                 redis_findings (hit rate and evictions of a sample, as health_check and triage judge them)
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.sampling import cache as _cache
from imsnb.sampling import deltas as _deltas
from imsnb.sampling import own as _own
from imsnb.sampling import plans as _plans
from imsnb.sampling import postgres as _postgres
from imsnb.sampling import sample as _sample
from imsnb.sampling import start as _start
from imsnb.sampling.cache import *
from imsnb.sampling.deltas import *
from imsnb.sampling.own import *
from imsnb.sampling.plans import *
from imsnb.sampling.postgres import *
from imsnb.sampling.sample import *
from imsnb.sampling.start import *

__all__: list[str] = []
__all__ += _deltas.__all__
__all__ += _own.__all__
__all__ += _plans.__all__
__all__ += _postgres.__all__
__all__ += _cache.__all__
__all__ += _sample.__all__
__all__ += _start.__all__
