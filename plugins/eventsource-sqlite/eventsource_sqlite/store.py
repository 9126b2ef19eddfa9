"""An event store in one SQLite file.

SQLite lets one writer in at a time, and the append computes its positions inside that
writer's ``BEGIN IMMEDIATE`` transaction, so position order is commit order: a reader at
position N has seen every event at or below N, with no gaps to wait for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple, Self
from uuid import UUID

import aiosqlite
import anyio

from eventsource_core import (
    Backlog,
    ConcurrencyError,
    DomainEvent,
    EventCodec,
    EventRegistry,
    ReadAll,
    StoredEvent,
    default_registry,
)
from eventsource_core.readahead import ReadAhead
from eventsource_core.serialization import Envelope
from eventsource_core.store import check_append

from . import queries
from .connection import connect, gate_for, open_options, storage_error
from .decoding import RowDecoder
from .schema import EVENTS, ensure_schema

__all__ = ["SQLiteEventStore"]

_INSERT = (
    "INSERT INTO events (global_position, event_id, event_type, aggregate_id, aggregate_type, "
    "aggregate_version, occurred_at, recorded_at, metadata, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STREAM = (
    f"SELECT {queries.COLUMNS} FROM events WHERE aggregate_type = ? "
    "AND aggregate_id = ? AND aggregate_version > ? ORDER BY aggregate_version"
)
# The next position honours AUTOINCREMENT's high-water mark, so deleted tails are never reused.
_HEAD = """
SELECT
  (SELECT COALESCE(MAX(aggregate_version), 0) FROM events
    WHERE aggregate_type = ? AND aggregate_id = ?),
  MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
      COALESCE((SELECT MAX(global_position) FROM events), 0))
"""


class SQLiteEventStore:
    """Events in the ``events`` table of an open aiosqlite connection.

    Pass the connection you already hold (``SQLiteEventStore(db)``), or let
    ``async with SQLiteEventStore.open("sqlite:///events.db") as store`` own one.
    A checkpoint repository may share the same connection or the same file.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        registry: EventRegistry = default_registry,
        codec: EventCodec | None = None,
        adopt: bool = False,
    ) -> None:
        self.db = db
        self.registry = registry
        self.codec = codec or EventCodec(registry)
        self._decoder = RowDecoder(self.codec)
        self._adopt = adopt
        self._gate = gate_for(db)
        self._listeners: list[Callable[[], None]] = []
        self._where = "the SQLite event store"
        self._ahead = ReadAhead(self._fetch_page, _follows)

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, **options: Any) -> AsyncIterator[Self]:
        """Open ``sqlite:///path/events.db``; the connection closes when the block ends.

        Options: ``busy_timeout`` (seconds, default 5), ``synchronous`` (default ``normal``),
        ``adopt`` (add our tables to a database that holds other tables), ``registry``.
        """
        opening = open_options(url, options)
        db = await connect(
            opening.path, busy_timeout=opening.busy_timeout, synchronous=opening.synchronous
        )
        try:
            store = cls(db, adopt=opening.adopt, **options)
            store._where = repr(opening.path)
            try:
                await store.ensure_schema()
                yield store
            finally:
                await store._ahead.close()
        finally:
            await db.close()

    async def ensure_schema(self) -> None:
        """Create the events table on first use, or check the existing one (idempotent)."""
        await ensure_schema(self.db, self._gate, EVENTS, where=self._where, adopt=self._adopt)

    # -- writing -------------------------------------------------------------------------------

    async def append(
        self,
        aggregate_id: UUID,
        aggregate_type: str,
        events: Sequence[DomainEvent],
        expected_version: int,
    ) -> list[StoredEvent]:
        check_append(aggregate_id, aggregate_type, events, expected_version)
        encode = self.codec.encode
        envelopes = [encode(event) for event in events]
        if not events:
            return []
        await self.ensure_schema()
        gate = self._gate
        gate.refuse_nested_write("SQLiteEventStore.append")
        now = datetime.now(UTC)
        recorded = now.isoformat()
        async with gate.lock:
            # Shielded: a cancelled append either commits or rolls back before it returns, and
            # never leaves a half-finished transaction queued on the connection.
            with anyio.CancelScope(shield=True):
                last_position = await self._append_rows(
                    aggregate_id, aggregate_type, expected_version, envelopes, recorded
                )
        for listener in list(self._listeners):
            listener()
        return [
            StoredEvent(event, last_position + i, now) for i, event in enumerate(events, start=1)
        ]

    async def _append_rows(
        self,
        aggregate_id: UUID,
        aggregate_type: str,
        expected_version: int,
        envelopes: list[Envelope],
        recorded: str,
    ) -> int:
        """One BEGIN IMMEDIATE ... COMMIT; returns the position before the first new event."""
        db, dumps, stream = self.db, self.codec.dumps, str(aggregate_id)
        try:
            await db.execute_fetchall("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc
        try:
            head = next(iter(await db.execute_fetchall(_HEAD, (aggregate_type, stream))))
            version, last_position = int(head[0]), int(head[1])
            if version != expected_version:
                raise ConcurrencyError(
                    f"{aggregate_type}-{aggregate_id}", expected_version, version
                )
            rows = [
                (
                    last_position + i,
                    str(env.event_id),
                    env.event_type,
                    stream,
                    aggregate_type,
                    env.aggregate_version,
                    env.occurred_at.isoformat(),
                    recorded,
                    dumps(env.metadata) if env.metadata else "{}",
                    dumps(env.payload),
                )
                for i, env in enumerate(envelopes, start=1)
            ]
            await db.executemany(_INSERT, rows)
            await db.execute_fetchall("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                await db.execute_fetchall("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise _integrity_error(exc, aggregate_type, aggregate_id) from exc
            if isinstance(exc, sqlite3.Error):
                raise storage_error(exc, self._where) from exc
            raise
        return last_position

    # -- reading -------------------------------------------------------------------------------

    async def read_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        """Events after ``after_position`` in position order.

        A full page starts reading the next one in the background, so a catching-up reader's
        next query runs in SQLite's thread while it handles this page. Positions are given in
        commit order, so a full page read earlier is exactly what a read now would return.
        """
        await self.ensure_schema()
        # Inside our own transaction a background fetch would wait for the lock we hold.
        prefetched = not self._gate.held_by_me()
        page = await self._ahead.fetch(after_position, limit, event_types, prefetched=prefetched)
        try:
            return self._decoder.decode_page(page.text, ordered=True)
        except json.JSONDecodeError:
            select, params = queries.page_params(after_position, limit, event_types)
            return await self._read_checked(select, params, ordered=True)

    async def _fetch_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None
    ) -> _Page:
        select, params = queries.page_params(after_position, limit, event_types)
        rows = await self._fetch(queries.counted_json(select), params)
        text, count, last = rows[0]
        return _Page(text, count, last)

    def read_all(
        self,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
    ) -> ReadAll:
        return ReadAll(self.read_page, after_position, limit, event_types)

    async def read_stream(
        self, aggregate_id: UUID, aggregate_type: str, after_version: int = 0
    ) -> list[StoredEvent]:
        await self.ensure_schema()
        stream = await self._read_events(
            _STREAM, (aggregate_type, str(aggregate_id), after_version), ordered=False
        )
        stream.sort(key=_version)  # the SELECT's order, made explicit
        return stream

    async def stream_version(self, aggregate_id: UUID, aggregate_type: str) -> int:
        await self.ensure_schema()
        rows = await self._fetch(
            "SELECT COALESCE(MAX(aggregate_version), 0) FROM events "
            "WHERE aggregate_type = ? AND aggregate_id = ?",
            (aggregate_type, str(aggregate_id)),
        )
        return int(rows[0][0])

    async def current_position(self) -> int:
        await self.ensure_schema()
        rows = await self._fetch("SELECT COALESCE(MAX(global_position), 0) FROM events", ())
        return int(rows[0][0])

    async def backlog(
        self, after_position: int, event_types: Sequence[str] | None = None
    ) -> Backlog:
        await self.ensure_schema()
        try:
            async with self._gate.reading():
                return await queries.backlog(self.db, after_position, event_types)
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Appends through this object wake subscriptions; other processes are seen by polling."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- helpers -------------------------------------------------------------------------------

    async def _read_events(
        self, select: str, params: tuple[object, ...], *, ordered: bool
    ) -> list[StoredEvent]:
        rows = await self._fetch(queries.as_json(select), params)
        try:
            return self._decoder.decode_page(rows[0][0], ordered=ordered)
        except json.JSONDecodeError:
            return await self._read_checked(select, params, ordered=ordered)

    async def _read_checked(
        self, select: str, params: tuple[object, ...], *, ordered: bool
    ) -> list[StoredEvent]:
        """Read again when a stored metadata or payload is not JSON (written by something
        else): SQLite checks every value, so the error names the problem."""
        rows = await self._fetch(queries.checked_json(select), params)
        return self._decoder.decode_nested(rows[0][0], ordered=ordered)

    async def _fetch(self, sql: str, params: Iterable[Any]) -> list[Any]:
        gate = self._gate
        try:
            if gate.owner is not None and gate.held_by_me():
                return list(await self.db.execute_fetchall(sql, params))
            async with gate.lock:
                return list(await self.db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise storage_error(exc, self._where) from exc


class _Page(NamedTuple):
    """A page as SQLite returns it: one JSON array, its event count and its last position."""

    text: str
    size: int
    last: int | None


def _follows(page: _Page, limit: int) -> int | None:
    return page.last if page.size == limit else None


def _integrity_error(
    exc: sqlite3.IntegrityError, aggregate_type: str, aggregate_id: UUID
) -> Exception:
    if "event_id" in str(exc):
        return ValueError(
            f"an event with one of these event_ids is already stored ({exc}); nothing was "
            "written. Create new events (each gets a fresh event_id) instead of re-appending"
        )
    return ValueError(
        f"the events' aggregate_version values clash with events already stored in "
        f"{aggregate_type}-{aggregate_id} ({exc}); nothing was written. Number new events "
        "expected_version + 1, expected_version + 2, ... (AggregateRoot.get_next_version does)"
    )


def _version(stored: StoredEvent) -> int:
    return stored.event.aggregate_version
