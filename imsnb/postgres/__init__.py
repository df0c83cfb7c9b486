"""PostgreSQL diagnostics, one module per topic, each holding its SQL, its fetcher and its judge together.

    session.py      Database (read-only, bounded, opened on first use), the default session, the timeouts
    literals.py     mask_literals: query text with its literals and comments replaced by `?`
    connections.py  server info, reachability, connections by state against max_connections
    activity.py     long-running statements, sessions idle in a transaction
    locks.py        blocked queries (pg_blocking_pids)
    statements.py   pg_stat_statements: slow and slowest statements (judged over a sample's period when given one)
    trail.py        the tables a statement reads, with their scans in the same period (named in its finding)
    indexes.py      INVALID indexes left by an interrupted CREATE INDEX CONCURRENTLY
    health.py       cache hit ratio, database sizes, transaction ID wraparound, replication lag
    row_counts.py   exact row counts judged against expected counts, on the server a restore is verified on
    plans.py        generic plans of normalized statements (nothing executed); the explain function
    planned.py      the window's statements planned: raw text by queryid, generic plan or why none
    plan_shape.py   a plan's scan and join nodes, cost and rows, and a hash of the nodes (what plan_change compares)
    candidates.py   the indexes a statement could use, from its parse tree (pglast)
    indexable.py    the tables an index could serve (size, columns, indexes) and the candidates they can take
    hypothetical.py HypoPG: hypothetical indexes the planner sees in this session only
    advice.py       index advice: the candidates verified with HypoPG's hypothetical indexes, and its judge
    vacuum.py       autovacuum falling behind: dead rows past the point where autovacuum starts on each table

Every fetcher returns a DataFrame (or a number) named for what it holds; query text shown anywhere is masked.
A new check is one fetcher and one judge in the topic's module, listed in that module's `__all__` (a new module is
imported below), plus a catalogue entry in `imsnb.findings`.
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.postgres import activity as _activity
from imsnb.postgres import advice as _advice
from imsnb.postgres import candidates as _candidates
from imsnb.postgres import connections as _connections
from imsnb.postgres import health as _health
from imsnb.postgres import indexes as _indexes
from imsnb.postgres import literals as _literals
from imsnb.postgres import locks as _locks
from imsnb.postgres import plan_shape as _plan_shape
from imsnb.postgres import planned as _planned
from imsnb.postgres import plans as _plans
from imsnb.postgres import row_counts as _row_counts
from imsnb.postgres import session as _session
from imsnb.postgres import statements as _statements
from imsnb.postgres import trail as _trail
from imsnb.postgres import vacuum as _vacuum
from imsnb.postgres.activity import *
from imsnb.postgres.advice import *
from imsnb.postgres.candidates import *
from imsnb.postgres.connections import *
from imsnb.postgres.health import *
from imsnb.postgres.indexes import *
from imsnb.postgres.literals import *
from imsnb.postgres.locks import *
from imsnb.postgres.plan_shape import *
from imsnb.postgres.planned import *
from imsnb.postgres.plans import *
from imsnb.postgres.row_counts import *
from imsnb.postgres.session import *
from imsnb.postgres.statements import *
from imsnb.postgres.trail import *
from imsnb.postgres.vacuum import *

__all__: list[str] = []
__all__ += _activity.__all__
__all__ += _advice.__all__
__all__ += _candidates.__all__
__all__ += _connections.__all__
__all__ += _health.__all__
__all__ += _indexes.__all__
__all__ += _literals.__all__
__all__ += _locks.__all__
__all__ += _plan_shape.__all__
__all__ += _planned.__all__
__all__ += _plans.__all__
__all__ += _row_counts.__all__
__all__ += _session.__all__
__all__ += _statements.__all__
__all__ += _trail.__all__
__all__ += _vacuum.__all__
