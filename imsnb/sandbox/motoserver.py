"""Run a moto server in its own process (moto's state is per process, so each sandbox gets its own AWS).

    python -m imsnb.sandbox.motoserver PORT CLOCK_FILE

moto stamps resources (RDS snapshots and events, S3 objects, ECS deployments) with "now" and has no way to set the
time. The sandbox needs a backup that is three days old, so this launcher makes moto's clock read `now - offset`,
the offset in seconds being the content of CLOCK_FILE (written by the sandbox before it creates a backdated
resource).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


def main(port: int, clock_file: Path) -> None:
    # lazy: this module is the moto server process's entry point; its parent (the sandbox) never loads moto
    import moto.core.utils as core_utils
    from moto.server import ThreadedMotoServer

    original = core_utils.utcnow

    def shifted_utcnow() -> datetime:
        try:
            offset = float(clock_file.read_text() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return original() - timedelta(seconds=offset)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # lazy: the models exist once the server has loaded its backends
    import moto.ecs.models
    import moto.rds.models
    import moto.s3.models

    for module in (core_utils, moto.ecs.models, moto.rds.models, moto.s3.models):
        module.utcnow = shifted_utcnow
    print(f"ready {datetime.now(UTC).isoformat()}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
