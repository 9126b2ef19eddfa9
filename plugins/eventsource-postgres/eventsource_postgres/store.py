"""The PostgreSQL event store: one-round-trip appends, gap-safe reads, NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]

from eventsource_core import (
    Backlog,
    ConcurrencyError,
    DomainEvent,
    EventCodec,
    EventRegistry,
    ReadAll,
    StorageError,
    StorageUnavailableError,
    StoredEvent,
    default_registry,
)
from eventsource_core.readahead import ReadAhead, after_full_page
from eventsource_core.store import check_append

from .connection import PoolOwner
from .decoding import RowDecoder
from .gaps import BlockingTransaction, GapTracker, HeldBack, Snapshot
from .notify import NotificationListener
from .outages import is_unavailable, translate_outages
from .schema import Names

__all__ = ["PostgreSQLEventStore"]

_COLUMNS = (
    "global_position, event_id, event_type, aggregate_id, aggregate_type, aggregate_version, "
    "occurred_at, recorded_at, metadata, payload"
)


class _Queries:
    """Every statement the store runs, for one schema."""

    def __init__(self, n: Names) -> None:
        e = n.events
        self.append = (
            f"SELECT global_position, recorded_at FROM {n.append}($1,$2,$3,$4,$5,$6,$7,$8,$9)"
        )
        self.read = (
            f"SELECT {_COLUMNS} FROM {e} WHERE global_position > $1 "
            "ORDER BY global_position LIMIT $2"
        )
        self.read_bounded = (
            f"SELECT {_COLUMNS} FROM {e} WHERE global_position > $1 AND global_position <= $2 "
            "ORDER BY global_position LIMIT $3"
        )
        self.read_typed = (
            f"SELECT {_COLUMNS} FROM {e} WHERE global_position > $1 AND global_position <= $2 "
            "AND event_type = ANY($3::text[]) ORDER BY global_position LIMIT $4"
        )
        self.read_stream = (
            f"SELECT {_COLUMNS} FROM {e} WHERE aggregate_type = $1 AND aggregate_id = $2 "
            "AND aggregate_version > $3 ORDER BY aggregate_version"
        )
        self.stream_version = (
            f"SELECT coalesce(max(aggregate_version), 0) FROM {e} "
            "WHERE aggregate_type = $1 AND aggregate_id = $2"
        )
        # Positions only (an index-only scan), with the snapshot of the same statement.
        self.scan = f"""
            WITH chunk AS MATERIALIZED (
                SELECT global_position AS p FROM {e} WHERE global_position > $1
                ORDER BY global_position LIMIT $2
            ), holes AS (
                SELECT prev + 1 AS first_missing, p - 1 AS last_missing
                  FROM (SELECT p, lag(p, 1, $1::bigint) OVER (ORDER BY p) AS prev FROM chunk) g
                 WHERE p > prev + 1
            )
            SELECT pg_current_snapshot()::text AS snap,
                   (SELECT max(p) FROM chunk) AS top,
                   (SELECT count(*) FROM chunk) AS n,
                   ARRAY(SELECT first_missing FROM holes ORDER BY first_missing) AS firsts,
                   ARRAY(SELECT last_missing FROM holes ORDER BY first_missing) AS lasts"""
        self.new_xid = "SELECT pg_current_xact_id()::text"
        backlog = f"""
            SELECT (SELECT count(*) FROM {e} WHERE global_position > $1 {{f}}) AS behind,
                   (SELECT recorded_at FROM {e} WHERE global_position > $1 {{f}}
                     ORDER BY global_position LIMIT 1) AS oldest,
                   l.event_id, l.global_position
              FROM (SELECT 1) one LEFT JOIN LATERAL (
                   SELECT event_id, global_position FROM {e} WHERE global_position > $1 {{f}}
                    ORDER BY global_position DESC LIMIT 1) l ON true"""
        self.backlog = backlog.format(f="")
        self.backlog_typed = backlog.format(f="AND event_type = ANY($2::text[])")


class PostgreSQLEventStore(PoolOwner):
    """Events in one PostgreSQL table with a gap-safe global order.

    Pass an asyncpg pool you own, or use ``PostgreSQLEventStore.from_url(url)`` and
    ``async with`` to let the store own one. asyncpg runs on asyncio only.
    """

    SCAN_CHUNK = 10_000
    MAX_SCAN_CHUNK = 200_000
    OWN_OPTIONS = ("schema", "registry")

    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
        *,
        schema: str = "public",
        registry: EventRegistry = default_registry,
        url: str | None = None,
        pool_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(pool, url, pool_options, schema)
        self.codec = EventCodec(registry)
        self._decoder = RowDecoder(self.codec)
        self.registry = registry
        self._sql = _Queries(self.names)
        self._gaps = GapTracker()
        self._settle_lock = asyncio.Lock()
        self._scans = 0
        self._last_scan_bound = -1
        self._last_scan_exhausted = False
        self._notifier: NotificationListener | None = None
        self._ahead = ReadAhead(self._read_page_now, after_full_page)

    # -- lifecycle -----------------------------------------------------------------------------

    async def initialize(self) -> None:
        self._ahead.reopen()
        await super().initialize()

    async def close(self) -> None:
        """Let read-aheads finish and stop listening; then close the pool if we opened it."""
        await self._ahead.close()
        if self._notifier is not None:
            await self._notifier.close()
            self._notifier = None
        await super().close()

    # -- writing -------------------------------------------------------------------------------

    async def append(
        self,
        aggregate_id: UUID,
        aggregate_type: str,
        events: Sequence[DomainEvent],
        expected_version: int,
        *,
        connection: asyncpg.Connection | None = None,
    ) -> list[StoredEvent]:
        """Append in one round trip. Pass ``connection`` to append inside your own transaction."""
        check_append(aggregate_id, aggregate_type, events, expected_version)
        if not events:
            return []
        envelopes = [self.codec.encode(event) for event in events]
        dumps = self.codec.dumps
        args = (
            aggregate_id,
            aggregate_type,
            expected_version,
            [e.event_id for e in envelopes],
            [e.event_type for e in envelopes],
            [e.aggregate_version for e in envelopes],
            [e.occurred_at for e in envelopes],
            [dumps(e.metadata) if e.metadata else None for e in envelopes],
            [dumps(e.payload) for e in envelopes],
        )
        sent = False
        try:
            pool = await self._open_pool()
            if connection is not None:
                sent = True
                rows = await connection.fetch(self._sql.append, *args)
            else:
                async with pool.acquire() as conn:
                    sent = True
                    rows = await conn.fetch(self._sql.append, *args)
        except Exception as exc:
            stream = f"{aggregate_type}-{aggregate_id}"
            if is_unavailable(exc):
                in_tx = connection is not None
                raise _append_outage(exc, stream, sent, own_transaction=in_tx) from exc
            if not isinstance(exc, asyncpg.PostgresError):
                raise
            error = await self._append_error(exc, aggregate_id, aggregate_type, expected_version)
            raise error from exc
        return [StoredEvent(event, row[0], row[1]) for event, row in zip(events, rows, strict=True)]

    async def _append_error(
        self, exc: asyncpg.PostgresError, aggregate_id: UUID, aggregate_type: str, expected: int
    ) -> Exception:
        stream = f"{aggregate_type}-{aggregate_id}"
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate == "ES409":
            return ConcurrencyError(stream, expected, int(str(exc.args[0]) if exc.args else -1))
        if isinstance(exc, asyncpg.UniqueViolationError):
            if getattr(exc, "constraint_name", None) == "events_stream_version_key":
                actual = await self.stream_version(aggregate_id, aggregate_type)
                return ConcurrencyError(stream, expected, actual)
            return StorageError(
                f"an event id in this append to {stream} is already stored ({exc}); nothing was "
                "written. Events are immutable: create new event objects for new facts"
            )
        return StorageError(f"appending to {stream} failed: {exc}; nothing was written")

    # -- reading streams -----------------------------------------------------------------------

    @translate_outages("reading a stream")
    async def read_stream(
        self, aggregate_id: UUID, aggregate_type: str, after_version: int = 0
    ) -> list[StoredEvent]:
        pool = await self._open_pool()
        rows = await pool.fetch(self._sql.read_stream, aggregate_type, aggregate_id, after_version)
        return self._decode(rows)

    @translate_outages("reading a stream version")
    async def stream_version(self, aggregate_id: UUID, aggregate_type: str) -> int:
        pool = await self._open_pool()
        return int(await pool.fetchval(self._sql.stream_version, aggregate_type, aggregate_id))

    # -- the global log ------------------------------------------------------------------------

    def read_all(
        self,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
    ) -> ReadAll:
        return ReadAll(self.read_page, after_position, limit, event_types)

    @translate_outages("reading events")
    async def read_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        """Events after ``after_position`` in position order, never past an unsettled hole.

        A full page starts reading the next one in the background, so a catching-up reader's
        next query runs on the server while this page is handled. A page only comes back full
        when everything in it was settled, so an early full page is exactly what a read now
        would return.
        """
        return await self._ahead.fetch(after_position, limit, event_types)

    async def _read_page_now(
        self, after_position: int, limit: int, event_types: Sequence[str] | None
    ) -> list[StoredEvent]:
        pool = await self._open_pool()
        if event_types is not None:
            return await self._read_typed(pool, after_position, limit, list(event_types))
        rows = await pool.fetch(self._sql.read, after_position, limit)
        if not rows:
            return []
        bound = self._gaps.settled_until(after_position)
        last = rows[-1][0]
        if last > bound:
            if _contiguous_above(rows, bound):
                self._gaps.extend(after_position, last)
            else:
                bound, _ = await self._settle(after_position, limit)
                rows = await pool.fetch(self._sql.read_bounded, after_position, bound, limit)
        return self._decode(rows)

    async def _read_typed(
        self, pool: asyncpg.Pool, after: int, limit: int, types: list[str]
    ) -> list[StoredEvent]:
        bound = self._gaps.settled_until(after)
        rows: list[Any] = []
        start, exhausted = after, False
        while True:
            if bound > start:
                more = await pool.fetch(
                    self._sql.read_typed, start, bound, types, limit - len(rows)
                )
                rows.extend(more)
                if len(rows) >= limit or exhausted:
                    break
                start = bound
            elif exhausted:
                break
            bound, exhausted = await self._settle(after, limit)
        return self._decode(rows)

    @translate_outages("reading the current position")
    async def current_position(self) -> int:
        """The highest position below which no event can still appear."""
        await self._open_pool()
        bound, exhausted = await self._settle(0, 2**62)
        while not exhausted:
            bound, exhausted = await self._settle(0, 2**62)
        return bound

    async def _settle(self, after: int, want: int) -> tuple[int, bool]:
        """Extend the settled range holding ``after``; returns its bound and whether it is
        as far as the store allows now (the top, or a hole that cannot be settled yet)."""
        seen = self._scans
        async with self._settle_lock:
            bound = self._gaps.settled_until(after)
            if self._scans > seen and bound == self._last_scan_bound:
                # a scan that began after our call already did the work
                return bound, self._last_scan_exhausted
            chunk = max(self.SCAN_CHUNK, min(want, self.MAX_SCAN_CHUNK))
            self._scans += 1
            for _ in range(64):
                row = await self.pool.fetchrow(self._sql.scan, bound, chunk)
                snapshot = Snapshot.parse(row["snap"])
                holes = list(zip(row["firsts"], row["lasts"], strict=True))
                new_bound, unknown = self._gaps.decide(bound, row["top"], holes, snapshot)
                if unknown:
                    upper = int(await self.pool.fetchval(self._sql.new_xid))
                    self._gaps.record(unknown, snapshot, upper)
                    bound = new_bound
                    continue  # look again now: a rolled-back hole settles at once
                full = row["n"] == chunk
                bound = new_bound
                if new_bound < (row["top"] or 0) or not full:
                    self._last_scan_bound, self._last_scan_exhausted = bound, True
                    return bound, True
                if bound - after >= want:
                    break
                chunk = min(chunk * 2, self.MAX_SCAN_CHUNK)
            self._last_scan_bound, self._last_scan_exhausted = bound, False
            return bound, False

    def held_back(self) -> HeldBack | None:
        """Where readers wait for a transaction to end, and for how long; ``None`` if nowhere.

        A long-running transaction that was open when a hole appeared holds readers at that
        hole until it ends; alert on ``seconds``.
        """
        return self._gaps.held

    async def blocking_transactions(self) -> list[BlockingTransaction]:
        """The sessions readers wait for (see :meth:`held_back`), from ``pg_stat_activity``.

        Without the ``pg_read_all_stats`` role, details of other users' sessions are hidden
        by PostgreSQL and come back as ``None``.
        """
        held = self._gaps.held
        if held is None or not held.blocking_xids:
            return []
        pool = await self._open_pool()
        rows = await pool.fetch(
            "SELECT pid, backend_xid::text, state, "
            "extract(epoch FROM clock_timestamp() - xact_start), left(query, 200) "
            "FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
            "AND backend_xid::text::bigint = ANY($1::bigint[])",
            [xid % 2**32 for xid in held.blocking_xids],
        )
        return [
            BlockingTransaction(
                pid=row[0],
                xid=int(row[1]),
                state=row[2],
                seconds=None if row[3] is None else float(row[3]),
                query=row[4],
            )
            for row in rows
        ]

    @translate_outages("reading the backlog")
    async def backlog(
        self, after_position: int, event_types: Sequence[str] | None = None
    ) -> Backlog:
        pool = await self._open_pool()
        if event_types is None:
            row = await pool.fetchrow(self._sql.backlog, after_position)
        else:
            row = await pool.fetchrow(self._sql.backlog_typed, after_position, list(event_types))
        return Backlog(row[0], row[1], row[2], row[3])

    # -- wake-ups ------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Wake ``listener`` on every NOTIFY from an append, in any process."""
        if self._notifier is None:
            self._notifier = NotificationListener(self.pool, self.names.channel)
        return self._notifier.add_listener(listener)

    @property
    def notifier(self) -> NotificationListener | None:
        return self._notifier

    # -- decoding ------------------------------------------------------------------------------

    def _decode(self, rows: Sequence[Any]) -> list[StoredEvent]:
        return self._decoder.decode(rows)


def _append_outage(
    exc: BaseException, stream: str, sent: bool, *, own_transaction: bool
) -> StorageUnavailableError:
    """The outage error for an append, saying whether anything may have been written."""
    if not sent:
        outcome = "nothing was written; append again once the server is back"
    elif own_transaction:
        outcome = (
            "your transaction was not committed, so nothing of it was written; run it again "
            "once the server is back"
        )
    else:
        outcome = (
            "the append was sent, so it may have committed before the connection dropped. Check "
            f"stream_version() of {stream} before appending again, or append the same events "
            "with the same expected_version: ConcurrencyError then means the first attempt "
            "was written"
        )
    detail = str(exc) or type(exc).__name__
    return StorageUnavailableError(
        f"PostgreSQL is unreachable while appending to {stream} ({detail}); {outcome}"
    )


def _contiguous_above(rows: Sequence[Any], bound: int) -> bool:
    """Whether the rows above ``bound`` are exactly ``bound + 1, bound + 2, ...``."""
    expected = bound + 1
    for row in rows:
        position = row[0]
        if position <= bound:
            continue
        if position != expected:
            return False
        expected += 1
    return True
