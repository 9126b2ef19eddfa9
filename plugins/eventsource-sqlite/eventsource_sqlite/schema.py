"""The tables, their version, and the checks that keep us off other people's data.

Each component (``events``, ``checkpoints``) records its version in ``eventsource_schema`` when
it creates its tables, in the same transaction. Nothing is written before the checks pass:
a garbage file, a newer schema or a foreign table raises and leaves the file as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import aiosqlite
import anyio
import attrs

from eventsource_core import StorageError

from .connection import MEMORY, Gate, storage_error
from .errors import ForeignDatabaseError, NewerSchemaError

__all__ = ["CHECKPOINTS", "EVENTS", "SCHEMA_TABLE", "Component", "ensure_schema"]

SCHEMA_TABLE = "eventsource_schema"
SCHEMA_COLUMNS = ("component", "version", "created_at")

_SCHEMA_DDL = f"""
CREATE TABLE {SCHEMA_TABLE} (
    component  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL
)"""


@attrs.frozen
class Component:
    name: str
    version: int
    tables: tuple[str, ...]
    ddl: tuple[str, ...]


EVENTS = Component(
    name="events",
    version=1,
    tables=("events",),
    ddl=(
        # AUTOINCREMENT: a position is never handed out twice, even after rows are deleted.
        """
        CREATE TABLE events (
            global_position   INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id          TEXT NOT NULL UNIQUE,
            event_type        TEXT NOT NULL,
            aggregate_id      TEXT NOT NULL,
            aggregate_type    TEXT NOT NULL,
            aggregate_version INTEGER NOT NULL,
            occurred_at       TEXT NOT NULL,
            recorded_at       TEXT NOT NULL,
            metadata          TEXT NOT NULL DEFAULT '{}',
            payload           TEXT NOT NULL,
            UNIQUE (aggregate_type, aggregate_id, aggregate_version)
        )""",
        "CREATE INDEX events_type_position ON events (event_type, global_position)",
    ),
)

CHECKPOINTS = Component(
    name="checkpoints",
    version=1,
    tables=("projection_checkpoints",),
    ddl=(
        """
        CREATE TABLE projection_checkpoints (
            projection_name   TEXT PRIMARY KEY,
            last_event_id     TEXT,
            last_event_type   TEXT,
            last_processed_at TEXT,
            events_processed  INTEGER NOT NULL DEFAULT 0,
            global_position   INTEGER,
            created_at        TEXT NOT NULL,
            updated_at        TEXT NOT NULL
        )""",
    ),
)


async def ensure_schema(
    db: aiosqlite.Connection, gate: Gate, component: Component, *, where: str, adopt: bool
) -> None:
    """Create ``component`` on first use, or check that the existing one is ours and usable.

    ``adopt`` allows adding our tables to a database that already holds other tables but has
    never seen eventsource; without it such a file counts as another application's.
    """
    if component.name in gate.ready:
        return
    if gate.held_by_me():  # inside our own transaction: the lock is already ours
        await _checked(db, gate, component, where=where, adopt=adopt)
        return
    async with gate.lock:
        if component.name not in gate.ready:
            await _checked(db, gate, component, where=where, adopt=adopt)


async def _checked(
    db: aiosqlite.Connection, gate: Gate, component: Component, *, where: str, adopt: bool
) -> None:
    try:
        await _ensure(db, component, where=where, adopt=adopt)
    except sqlite3.Error as exc:
        raise storage_error(exc, where) from exc
    gate.ready.add(component.name)


async def _ensure(
    db: aiosqlite.Connection, component: Component, *, where: str, adopt: bool
) -> None:
    version = await _inspect(db, component, where=where, adopt=adopt)
    if version is None:
        if db.in_transaction:
            raise StorageError(
                f"cannot create the {component.name} tables in {where}: the connection has an "
                "open transaction; commit or roll it back first (or use the store once before "
                "opening a transaction)"
            )
        with anyio.CancelScope(shield=True):  # never leave a half-created schema queued
            await db.execute_fetchall("BEGIN IMMEDIATE")
            try:
                # Another process may have created it while we waited for the write lock.
                version = await _inspect(db, component, where=where, adopt=adopt)
                if version is None:
                    await _create(db, component)
                await db.execute_fetchall("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute_fetchall("ROLLBACK")
                raise
    if version is not None and version > component.version:
        raise NewerSchemaError(
            f"{where} holds {component.name} schema version {version}, but this "
            f"eventsource-sqlite understands up to version {component.version}; the file was "
            "not changed. Upgrade eventsource-sqlite to open it"
        )
    await _use_wal(db)


async def _inspect(
    db: aiosqlite.Connection, component: Component, *, where: str, adopt: bool
) -> int | None:
    """The component's recorded version, or ``None`` when it may be created here."""
    rows = await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    )
    tables = {name for (name,) in rows}
    if SCHEMA_TABLE in tables:
        columns = tuple(
            row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({SCHEMA_TABLE})")
        )
        if columns != SCHEMA_COLUMNS:
            raise ForeignDatabaseError(
                f"{where} has a table named {SCHEMA_TABLE!r} that eventsource did not create; "
                "the file was not changed. Use a separate database file for eventsource"
            )
        found = await db.execute_fetchall(
            f"SELECT version FROM {SCHEMA_TABLE} WHERE component = ?", (component.name,)
        )
        if found:
            return int(next(iter(found))[0])
    clashing = sorted(t for t in component.tables if t in tables)
    if clashing:
        raise ForeignDatabaseError(
            f"{where} already has a table {', '.join(map(repr, clashing))} that eventsource did "
            "not create; the file was not changed. Use a separate database file for eventsource, "
            "or rename that table"
        )
    others = sorted(tables - {SCHEMA_TABLE})
    if SCHEMA_TABLE not in tables and others and not adopt:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ForeignDatabaseError(
            f"{where} belongs to another application (it holds {shown}) and has no eventsource "
            "tables; the file was not changed. Point the URL at a new file, or pass adopt=True "
            "(URL: ?adopt=true) to add eventsource's tables next to the existing ones"
        )
    return None


async def _create(db: aiosqlite.Connection, component: Component) -> None:
    rows = await db.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
    )
    if not list(rows):
        await db.execute_fetchall(_SCHEMA_DDL)
    for statement in component.ddl:
        await db.execute_fetchall(statement)
    await db.execute_fetchall(
        f"INSERT INTO {SCHEMA_TABLE} (component, version, created_at) VALUES (?, ?, ?)",
        (component.name, component.version, datetime.now(UTC).isoformat()),
    )


async def _use_wal(db: aiosqlite.Connection) -> None:
    """WAL lets readers in other processes go on while one process writes."""
    if db.in_transaction:
        return
    rows = list(await db.execute_fetchall("PRAGMA database_list"))
    files: Sequence[str] = [row[2] for row in rows if row[1] == "main"]
    if not files or not files[0] or files[0] == MEMORY:
        return
    await db.execute_fetchall("PRAGMA journal_mode=WAL")
