"""The API and the network: the runbook's /health check, response times, TCP reachability, TLS certificates.

One module per topic, each holding its calls and its judges side by side: `health` (the /health GET and response
times), `network` (TCP reachability), `tls` (certificates), `timeouts` (the runbook's API-timeout fixes). Notebooks
use the names below as `api.<name>`.
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.api import health as _health
from imsnb.api import network as _network
from imsnb.api import timeouts as _timeouts
from imsnb.api import tls as _tls
from imsnb.api.health import *
from imsnb.api.network import *
from imsnb.api.timeouts import *
from imsnb.api.tls import *

__all__: list[str] = []
__all__ += _health.__all__
__all__ += _network.__all__
__all__ += _timeouts.__all__
__all__ += _tls.__all__
