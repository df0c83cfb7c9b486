"""`imsnb state`: the store imsnb keeps its memory in (IMSNB_STATE_URL or `[state] url`, else the SQLite history):
create its schema, migrate it, say what it holds."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse

from imsnb.cli.common import add_group

COUNTED = ("snapshots", "baselines", "plans", "notify_checks", "runs", "tickets", "postmortems")


def add_state(sub: argparse._SubParsersAction) -> None:
    where = "the store (IMSNB_STATE_URL or [state] url of imsnb.toml; default: the SQLite history)"
    commands = add_group(sub, "state", f"{where}: create its schema, migrate it, show it", cmd_state)
    commands.add_parser("init", help="create imsnb's schema in the store (already there: made current, said so)")
    commands.add_parser("migrate", help="apply the schema migrations the store lacks (current: said so)")
    commands.add_parser("status", help="which store, its schema version and how many rows each table holds")


def cmd_state(args: argparse.Namespace) -> int:
    from imsnb.state import check_store, open_store
    from imsnb.state.schema import LATEST

    store = open_store(check_store())
    if args.state_command == "status":
        for line in _status(store):
            print(line)
        return 0
    before, after = store.migrate()
    if before == after:
        print(f"{store.name}: schema already current (version {after}); nothing to do")
    elif before == 0:
        print(f"{store.name}: schema created (version {after})")
    else:
        print(f"{store.name}: schema migrated from version {before} to {after}")
    return 0 if after == LATEST else 1


def _status(store) -> list[str]:
    from imsnb.state.schema import LATEST

    version = store.version()
    kind = "shared: history, notification state, run catalogue" if store.shared else "history only"
    lines = [f"store: {store.name} ({store.dialect}, {kind})"]
    if version == 0:
        return [*lines, f"schema: none yet (run `imsnb state init`; this imsnb's is version {LATEST})"]
    behind = "" if version == LATEST else f" (this imsnb's is {LATEST}: run `imsnb state migrate`)"
    lines.append(f"schema: version {version}{behind}")
    conn = store.connect() if version == LATEST else None
    if conn is not None:
        try:
            for table in COUNTED:
                rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                lines.append(f"  {table:<14} {rows} row(s)")
        finally:
            conn.close()
    return lines
