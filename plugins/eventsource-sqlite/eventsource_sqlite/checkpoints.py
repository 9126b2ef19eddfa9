"""Checkpoints in the ``projection_checkpoints`` table, with lag answered by SQL.

Every write is one UPSERT statement whose WHERE clause keeps positions from moving backwards,
so a late or repeated save can never undo progress, even from another process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterable
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
from .sending import Refusal, Sent, send

__all__ = ["SQLiteCheckpointRepository", "SQLiteCheckpointTransaction"]

#: The time of a write, taken by SQLite once per statement: ISO 8601 in UTC, milliseconds.
#: Computing it here rather than in Python keeps the per-event path short (see the bench).
NOW = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"

SAVE_POSITION = f"""
INSERT INTO projection_checkpoints (projection_name, last_event_id, last_event_type,
    last_processed_at, events_processed, global_position, created_at, updated_at)
VALUES (?, ?, ?, {NOW}, ?, ?, {NOW}, {NOW})
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

#: The save queued behind an unconfirmed one applies only where that one landed. Otherwise
#: ``created_at`` comes out NULL, on insert (no row yet) or on update (the row is elsewhere),
#: and the NOT NULL column refuses the statement: it fails instead of passing silently.
SAVE_AFTER = f"""
INSERT INTO projection_checkpoints (projection_name, last_event_id, last_event_type,
    last_processed_at, events_processed, global_position, created_at, updated_at)
VALUES (?, ?, ?, {NOW}, ?, ?,
    (SELECT created_at FROM projection_checkpoints WHERE projection_name = ?), {NOW})
ON CONFLICT (projection_name) DO UPDATE SET
    created_at = CASE WHEN global_position IS ? THEN created_at END,
    events_processed = events_processed + excluded.events_processed,
    last_event_id = excluded.last_event_id,
    last_event_type = excluded.last_event_type,
    last_processed_at = excluded.last_processed_at,
    global_position = excluded.global_position,
    updated_at = excluded.updated_at
"""

_NOT_AFTER = Refusal(
    "NOT NULL constraint failed: projection_checkpoints.created_at",
    "a checkpoint save was not applied because the save queued before it failed; the "
    "subscription saves both again, so no progress and no count is lost",
)

_UPDATE_CHECKPOINT = f"""
INSERT INTO projection_checkpoints (projection_name, last_event_id, last_event_type,
    last_processed_at, events_processed, global_position, created_at, updated_at)
VALUES (?, ?, ?, {NOW}, 1, NULL, {NOW}, {NOW})
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


def position_params(
    subscription_id: str, position: int, event_id: UUID, event_type: str, events: int
) -> tuple[object, ...]:
    if position < 0 or events < 0:
        raise ValueError(f"position and events must be >= 0, got {position} and {events}")
    return (validate_name(subscription_id), str(event_id), event_type, events, position)


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
        #: The last save queued per name, and its position, for chaining the next one.
        self._sends: dict[str, tuple[int, Sent]] = {}

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
        await self.queue_position(subscription_id, position, event_id, event_type, events=events)

    def queue_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> Awaitable[None]:
        """``save_position``, already on SQLite's thread when this returns, if it can be.

        A save queued while the one before it (same name) is unconfirmed applies only if
        that one did, so a failed save can never be covered by a later one: the caller sees
        both fail and saves their events again, counted once.
        """
        params = position_params(subscription_id, position, event_id, event_type, events)
        before = self._sends.get(subscription_id)
        if before is not None and (before[1].delivered or before[1].succeeded()):
            before = None  # its outcome is known: nothing to wait for
        gate, db = self._gate, self.db
        if (
            (before is None or before[1].queued)
            and not gate.lock.locked()
            and CHECKPOINTS.name in gate.ready
            and db.isolation_level is None
            and not db.in_transaction
        ):
            # Nothing holds the connection, so the statement lands ahead of any transaction
            # begun later and needs no lock; anything queued before it runs first.
            if before is None or position <= before[0]:
                sent = send(db, SAVE_POSITION, params, self._where)
            else:
                after = (*params, subscription_id, before[0])
                sent = send(db, SAVE_AFTER, after, self._where, refusal=_NOT_AFTER)
        else:
            # The save waits its turn when awaited, in the caller's task (which may hold the
            # connection's transaction); the marker keeps later saves behind it.
            marker = Sent(
                asyncio.get_running_loop().create_future(),
                self._where,
                queued=False,
            )
            self._remember(subscription_id, position, marker)
            return self._save_after(before, params, marker)
        self._remember(subscription_id, position, sent)
        return sent

    async def _save_after(
        self, before: tuple[int, Sent] | None, params: tuple[object, ...], marker: Sent
    ) -> None:
        applied = False
        try:
            if before is not None and not await before[1].applied():
                raise StorageError(_NOT_AFTER.message)
            await self._write(SAVE_POSITION, params, "save_position")
            applied = True
        finally:
            marker.resolve(applied)

    def _remember(self, name: str, position: int, sent: Sent) -> None:
        sends = self._sends
        if len(sends) >= 256 and name not in sends:  # many names: drop the settled ones
            for done in [key for key, (_, old) in sends.items() if old.delivered]:
                del sends[done]
        sends[name] = (position, sent)

    async def update_checkpoint(
        self, projection_name: str, event_id: UUID, event_type: str
    ) -> None:
        params = (validate_name(projection_name), str(event_id), event_type)
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
