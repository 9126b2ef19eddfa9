"""Checkpoints in the ``projection_checkpoints`` table, with lag answered by SQL.

Every write is one UPSERT statement whose WHERE clause keeps positions from moving backwards,
so a late or repeated save can never undo progress, even from another process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

import aiosqlite
import anyio

from eventsource_core import (
    Backlog,
    CheckpointData,
    EventSource,
    LagMetrics,
    StorageError,
)
from eventsource_core.checkpoints import validate_name

from . import queries
from .connection import connect, gate_for, open_options, storage_error
from .schema import CHECKPOINTS, EVENTS, SCHEMA_TABLE, ensure_schema

__all__ = ["SQLiteCheckpointRepository", "SQLiteCheckpointTransaction"]

#: The time of a write, taken by SQLite once per statement: ISO 8601 in UTC, milliseconds.
#: Computing it here rather than in Python keeps the per-event path short (see the bench).
NOW = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"

SAVE_POSITION = f"""
INSERT INTO projection_checkpoints (projection_name, last_event_id, last_event_type,
    last_processed_at, events_processed, global_position, created_at, updated_at)
VALUES (?1, ?2, ?3, {NOW}, ?4, ?5, {NOW}, {NOW})
ON CONFLICT (projection_name) DO UPDATE SET
    events_processed = events_processed + CASE
        WHEN global_position IS excluded.global_position THEN 0
        ELSE excluded.events_processed END,
    last_event_id = excluded.last_event_id,
    last_event_type = excluded.last_event_type,
    last_processed_at = excluded.last_processed_at,
    global_position = excluded.global_position,
    updated_at = excluded.updated_at
WHERE global_position IS NULL OR excluded.global_position >= global_position
"""

_UPDATE_CHECKPOINT = f"""
INSERT INTO projection_checkpoints (projection_name, last_event_id, last_event_type,
    last_processed_at, events_processed, global_position, created_at, updated_at)
VALUES (?1, ?2, ?3, {NOW}, 1, NULL, {NOW}, {NOW})
ON CONFLICT (projection_name) DO UPDATE SET
    events_processed = events_processed + CASE
        WHEN last_event_id IS excluded.last_event_id THEN 0 ELSE 1 END,
    last_event_id = excluded.last_event_id,
    last_event_type = excluded.last_event_type,
    last_processed_at = excluded.last_processed_at,
    updated_at = excluded.updated_at
"""

_SELECT = (
    "SELECT projection_name, last_event_id, last_event_type, last_processed_at, "
    "events_processed, global_position FROM projection_checkpoints"
)


_valid_names: set[str] = set()


def checked_name(name: str) -> str:
    """``validate_name``, remembered: subscriptions save under the same few names all day."""
    if type(name) is not str or name not in _valid_names:
        validate_name(name)
        if len(_valid_names) >= 1024:
            _valid_names.clear()
        _valid_names.add(name)
    return name


def position_params(
    subscription_id: str, position: int, event_id: UUID, event_type: str, events: int
) -> tuple[object, ...]:
    if position < 0 or events < 0:
        raise ValueError(f"position and events must be >= 0, got {position} and {events}")
    return (checked_name(subscription_id), str(event_id), event_type, events, position)


class SQLiteCheckpointTransaction:
    """An open ``BEGIN IMMEDIATE`` transaction: read-model writes and the checkpoint commit
    together. Write through :attr:`connection`; never commit or roll back yourself."""

    def __init__(self, connection: aiosqlite.Connection, where: str) -> None:
        self.connection = connection
        self._where = where

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        params = position_params(subscription_id, position, event_id, event_type, events)
        try:
            await self.connection.execute_fetchall(SAVE_POSITION, params)
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc


class SQLiteCheckpointRepository:
    """Checkpoints in an open aiosqlite connection: ``SQLiteCheckpointRepository(db)``.

    Lag metrics count events in the ``events`` table of the same database. When that table
    is elsewhere, pass ``event_store=``; with neither, lag metrics say 0 seconds and leave
    ``events_behind`` as ``None``.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        event_store: EventSource | None = None,
        adopt: bool = False,
    ) -> None:
        self.db = db
        self.event_store = event_store
        self._adopt = adopt
        self._gate = gate_for(db)
        self._where = "the SQLite checkpoint database"

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, **options: Any) -> AsyncIterator[Self]:
        """Open ``sqlite:///path/events.db``; the connection closes when the block ends.

        Options: ``busy_timeout`` (seconds, default 5), ``synchronous`` (default ``normal``),
        ``adopt`` (add our tables to a database that holds other tables), ``event_store``.
        """
        opening = open_options(url, options)
        db = await connect(
            opening.path, busy_timeout=opening.busy_timeout, synchronous=opening.synchronous
        )
        try:
            repo = cls(db, adopt=opening.adopt, **options)
            repo._where = repr(opening.path)
            await repo.ensure_schema()
            yield repo
        finally:
            await db.close()

    async def ensure_schema(self) -> None:
        """Create the checkpoint table on first use, or check the existing one (idempotent)."""
        await ensure_schema(self.db, self._gate, CHECKPOINTS, where=self._where, adopt=self._adopt)

    # -- writes --------------------------------------------------------------------------------

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        params = position_params(subscription_id, position, event_id, event_type, events)
        gate, db = self._gate, self.db
        if (
            not gate.lock.locked()
            and CHECKPOINTS.name in gate.ready
            and db.isolation_level is None
            and not db.in_transaction
        ):
            # The hot path of AFTER_EACH_EVENT. The statement is queued on the connection
            # before this task can yield, and nothing holds the connection now, so it cannot
            # land inside another task's transaction; skipping the lock keeps the Python
            # between two database round trips short, which is what the rate depends on.
            try:
                await db.execute_fetchall(SAVE_POSITION, params)
            except sqlite3.Error as exc:
                raise storage_error(exc, self._where) from exc
            return
        await self._write(SAVE_POSITION, params, "save_position")

    async def update_checkpoint(
        self, projection_name: str, event_id: UUID, event_type: str
    ) -> None:
        params = (checked_name(projection_name), str(event_id), event_type)
        await self._write(_UPDATE_CHECKPOINT, params, "update_checkpoint")

    async def reset_checkpoint(self, projection_name: str) -> None:
        await self._write(
            "DELETE FROM projection_checkpoints WHERE projection_name = ?",
            (projection_name,),
            "reset_checkpoint",
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteCheckpointTransaction]:
        """One ``BEGIN IMMEDIATE`` transaction: commit on normal exit, roll back on error.

        Other work on this connection waits until it ends; other processes wait up to the
        busy timeout, so keep what runs inside short.
        """
        await self.ensure_schema()
        gate, db = self._gate, self.db
        gate.refuse_nested_write("transaction()")
        async with gate.lock:
            self._refuse_foreign_transaction()
            try:
                with anyio.CancelScope(shield=True):  # BEGIN runs even if we were cancelled
                    await db.execute_fetchall("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_error(exc, self._where) from exc
            gate.owner = asyncio.current_task()
            try:
                yield SQLiteCheckpointTransaction(db, self._where)
                with anyio.CancelScope(shield=True):  # a queued COMMIT must not race a ROLLBACK
                    await db.execute_fetchall("COMMIT")
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    if db.in_transaction:
                        await db.execute_fetchall("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(exc, self._where) from exc
                raise
            finally:
                gate.owner = None

    # -- reads ---------------------------------------------------------------------------------

    async def get_checkpoint(self, projection_name: str) -> UUID | None:
        row = await self._row(projection_name)
        return None if row is None or row[1] is None else UUID(row[1])

    async def get_position(self, subscription_id: str) -> int | None:
        row = await self._row(subscription_id)
        return None if row is None else row[5]

    async def get_all_checkpoints(self) -> list[CheckpointData]:
        rows = await self._read(f"{_SELECT} ORDER BY projection_name", ())
        return [_data(row) for row in rows]

    async def get_lag_metrics(
        self, projection_name: str, event_types: list[str] | None = None
    ) -> LagMetrics | None:
        row = await self._row(projection_name)
        if row is None:
            return None
        data = _data(row)
        last_id = None if data.last_event_id is None else str(data.last_event_id)
        processed_at = (
            None if data.last_processed_at is None else data.last_processed_at.isoformat()
        )
        backlog = await self._backlog(data.global_position or 0, event_types)
        if backlog is None:
            return LagMetrics(
                projection_name=projection_name,
                last_event_id=last_id,
                latest_event_id=last_id,
                lag_seconds=0.0,
                events_processed=data.events_processed,
                last_processed_at=processed_at,
            )
        lag = 0.0
        if backlog.oldest_recorded_at is not None:
            lag = max(0.0, (datetime.now(UTC) - backlog.oldest_recorded_at).total_seconds())
        latest = backlog.latest_event_id
        return LagMetrics(
            projection_name=projection_name,
            last_event_id=last_id,
            latest_event_id=str(latest) if latest is not None else last_id,
            lag_seconds=lag,
            events_processed=data.events_processed,
            last_processed_at=processed_at,
            events_behind=backlog.events_behind,
            latest_position=backlog.latest_position,
        )

    # -- helpers -------------------------------------------------------------------------------

    async def _backlog(self, after: int, event_types: list[str] | None) -> Backlog | None:
        if self.event_store is not None:
            return await self.event_store.backlog(after, event_types)
        if EVENTS.name not in self._gate.ready:
            found = await self._read(
                f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{SCHEMA_TABLE}'",
                (),
            )
            if not found or not await self._read(
                f"SELECT 1 FROM {SCHEMA_TABLE} WHERE component = ?", (EVENTS.name,)
            ):
                return None
        try:
            async with self._gate.reading():
                return await queries.backlog(self.db, after, event_types)
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc

    async def _row(self, name: str) -> Any:
        rows = await self._read(f"{_SELECT} WHERE projection_name = ?", (name,))
        return rows[0] if rows else None

    async def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        if CHECKPOINTS.name not in self._gate.ready:
            await self.ensure_schema()
        gate = self._gate
        try:
            if gate.held_by_me():
                return list(await self.db.execute_fetchall(sql, params))
            async with gate.lock:
                return list(await self.db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc

    async def _write(self, sql: str, params: Iterable[Any], what: str) -> None:
        gate, db = self._gate, self.db
        if CHECKPOINTS.name not in gate.ready:
            await self.ensure_schema()
        gate.refuse_nested_write(f"SQLiteCheckpointRepository.{what}")
        async with gate.lock:
            self._refuse_foreign_transaction()
            try:
                if db.isolation_level is None:  # autocommit: one statement, nothing to leave open
                    await db.execute_fetchall(sql, params)
                else:  # sqlite3's implicit transactions: the COMMIT must follow, cancelled or not
                    with anyio.CancelScope(shield=True):
                        await db.execute_fetchall(sql, params)
                        if db.in_transaction:
                            await db.commit()
            except sqlite3.Error as exc:
                with anyio.CancelScope(shield=True):
                    if db.in_transaction:
                        await db.rollback()
                raise storage_error(exc, self._where) from exc

    def _refuse_foreign_transaction(self) -> None:
        if self.db.in_transaction:
            raise StorageError(
                "the connection passed to SQLiteCheckpointRepository has an open transaction "
                "that eventsource did not start; commit or roll it back first, or give the "
                "repository a connection of its own"
            )


def _data(row: Any) -> CheckpointData:
    name, event_id, event_type, processed_at, processed, position = row
    return CheckpointData(
        projection_name=name,
        last_event_id=None if event_id is None else UUID(event_id),
        last_event_type=event_type,
        last_processed_at=None if processed_at is None else datetime.fromisoformat(processed_at),
        events_processed=int(processed),
        global_position=position,
    )
