"""Redis diagnostics, one module per topic, each holding its fetcher and its judge together.

    session.py  Cache (one connection per run, short socket timeouts, failure remembered), reachability
    memory.py   used_memory against maxmemory, the eviction policy, fragmentation
    stats.py    INFO stats since restart (shown as context) and blocked clients; hit rate and evictions are judged
                on a sample, in `imsnb.sampling`
    latency.py  PING round trips
    keys.py     keys per database, the biggest keys of a bounded SCAN sample
    slowlog.py  the slow log, arguments masked
    replication.py  each replica's silence toward its master and bytes behind (INFO replication)

Nothing here walks the keyspace with KEYS: big keys come from a bounded SCAN sample and MEMORY USAGE.
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.cache import keys as _keys
from imsnb.cache import latency as _latency
from imsnb.cache import memory as _memory
from imsnb.cache import replication as _replication
from imsnb.cache import session as _session
from imsnb.cache import slowlog as _slowlog
from imsnb.cache import stats as _stats
from imsnb.cache.keys import *
from imsnb.cache.latency import *
from imsnb.cache.memory import *
from imsnb.cache.replication import *
from imsnb.cache.session import *
from imsnb.cache.slowlog import *
from imsnb.cache.stats import *

__all__: list[str] = []
__all__ += _keys.__all__
__all__ += _latency.__all__
__all__ += _memory.__all__
__all__ += _replication.__all__
__all__ += _session.__all__
__all__ += _slowlog.__all__
__all__ += _stats.__all__
