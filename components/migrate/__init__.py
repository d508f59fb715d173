"""Zero-downtime data migration (issue 14): a checkpointed phase machine with engine
adapters. Deploy- and run-time neutral: never imports pulumi.

    from components.migrate import Migration, open_migration
    m = open_migration("orders", "postgresql://...", "postgresql://...")
    m.run(until=Phase.VERIFY)          # preflight, capture, backfill, catch-up, verify
    m.cutover(writes_stopped=True)     # drain, verify, setval, fence, reverse sync
    m.rollback(writes_stopped=True)    # or m.finalize()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.migrate.adapter import Adapter, MigrationError, PreflightFailed
from components.migrate.migration import Migration, status_document
from components.migrate.phases import Phase, TransitionError
from components.migrate.state import Fenced, LeaseHeld, SQLiteStore, StateError, StateStore
from components.migrate.urls import UrlError, endpoint, migration_id, state_url

__all__ = ["Adapter", "Fenced", "LeaseHeld", "Migration", "MigrationError", "Phase",
           "PreflightFailed", "SQLiteStore", "StateError", "TransitionError", "UrlError",
           "make_adapter", "open_migration", "open_store", "status_document"]


def make_adapter(mid: str, source: str, target: str, **options: Any) -> Adapter:
    """The engine adapter for two endpoint URLs (both of one engine)."""
    src, tgt = endpoint(source, "--source"), endpoint(target, "--target")
    if src.kind != tgt.kind:
        raise UrlError(f"--source is {src.kind} and --target is {tgt.kind}; allowed: two "
                       "endpoints of one engine")
    if (src.host, src.port, src.database) == (tgt.host, tgt.port, tgt.database):
        raise UrlError("--source and --target are the same database; allowed: two databases")
    if src.kind == "dynamodb":
        from components.migrate.dynamodb import DynamoDBAdapter

        return DynamoDBAdapter(migration_id(mid), src, tgt, **options)
    if src.kind == "mysql":
        from components.migrate.mysql import MySQLAdapter

        return MySQLAdapter(migration_id(mid), src, tgt, **options)
    from components.migrate.postgres import PostgresAdapter

    return PostgresAdapter(migration_id(mid), src, tgt, **options)


def open_migration(mid: str, source: str, target: str, state: str | None = None, *,
                   base: Path | None = None, adapter_options: dict[str, Any] | None = None,
                   **options: Any) -> Migration:
    adapter = make_adapter(mid, source, target, **(adapter_options or {}))
    store = open_store(state, base)
    return Migration(mid, adapter, store, source_shown=endpoint(source).shown,
                     target_shown=endpoint(target, "--target").shown, **options)


def open_store(state: str | None, base: Path | None = None) -> StateStore:
    """The state store of ``--state``: SQLite (default) or a DynamoDB table."""
    where = state_url(state, base)
    if isinstance(where, Path):
        return SQLiteStore(where)
    import boto3

    from components.migrate.state_dynamodb import DynamoDBStore

    client = boto3.client("dynamodb", region_name=where.region,
                          endpoint_url=where.endpoint_url)
    return DynamoDBStore(where.table, client)
