"""Checkpoints in ``projection_checkpoints``, lag by SQL, and exactly-once transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]

from eventsource_core import CheckpointData, LagMetrics
from eventsource_core.checkpoints import validate_name

from .claims import DEFAULT_LEASE_SECONDS, PostgreSQLClaim, PostgreSQLClaims
from .connection import PoolOwner
from .held import HeldConnection
from .outages import is_unavailable, translate_outages, unavailable_error
from .schema import Names

__all__ = ["PostgreSQLCheckpointRepository", "PostgreSQLCheckpointTransaction"]


class _Queries:
    def __init__(self, n: Names) -> None:
        c, e = n.checkpoints, n.events
        self.get_checkpoint = f"SELECT last_event_id FROM {c} WHERE projection_name = $1"
        self.get_position = f"SELECT global_position FROM {c} WHERE projection_name = $1"
        # Never backwards; the same position again does not count again. $6 is the claim
        # token that becomes the row's fence (NULL when unfenced: the fence stays).
        self.save_position = f"""
            INSERT INTO {c} AS c (projection_name, global_position, last_event_id,
                   last_event_type, events_processed, last_processed_at, created_at, updated_at,
                   fence)
            VALUES ($1, $2, $3, $4, $5, now(), now(), now(), $6)
            ON CONFLICT (projection_name) DO UPDATE SET
                   events_processed = coalesce(c.events_processed, 0) + CASE
                       WHEN c.global_position IS DISTINCT FROM EXCLUDED.global_position
                       THEN EXCLUDED.events_processed ELSE 0 END,
                   global_position = EXCLUDED.global_position,
                   last_event_id = EXCLUDED.last_event_id,
                   last_event_type = EXCLUDED.last_event_type,
                   last_processed_at = now(),
                   updated_at = now(),
                   fence = coalesce(EXCLUDED.fence, c.fence)
             WHERE c.global_position IS NULL OR c.global_position <= EXCLUDED.global_position"""
        # The owner's usual save: one statement, no lock on the claim row. It writes only
        # while the row's fence is the owner's token ($6); a take-over moves the fence (see
        # schema migration 3). Saving an older position changes nothing, as above, but still
        # matches the row, so "no row" means only "no row yet, or not ours any more".
        forward = "(global_position IS NULL OR global_position <= $2)"
        self.save_position_fenced = f"""
            UPDATE {c} SET
                   events_processed = coalesce(events_processed, 0) + CASE
                       WHEN global_position IS NULL OR global_position < $2 THEN $5 ELSE 0 END,
                   global_position = greatest(global_position, $2),
                   last_event_id = CASE WHEN {forward} THEN $3 ELSE last_event_id END,
                   last_event_type = CASE WHEN {forward} THEN $4 ELSE last_event_type END,
                   last_processed_at = CASE WHEN {forward} THEN now() ELSE last_processed_at END,
                   updated_at = CASE WHEN {forward} THEN now() ELSE updated_at END
             WHERE projection_name = $1 AND fence = $6"""
        self.update_checkpoint = f"""
            INSERT INTO {c} AS c (projection_name, last_event_id, last_event_type,
                   events_processed, last_processed_at, created_at, updated_at)
            VALUES ($1, $2, $3, 1, now(), now(), now())
            ON CONFLICT (projection_name) DO UPDATE SET
                   events_processed = coalesce(c.events_processed, 0) + CASE
                       WHEN c.last_event_id IS DISTINCT FROM EXCLUDED.last_event_id
                       THEN 1 ELSE 0 END,
                   last_event_id = EXCLUDED.last_event_id,
                   last_event_type = EXCLUDED.last_event_type,
                   last_processed_at = now(),
                   updated_at = now()"""
        self.reset = f"DELETE FROM {c} WHERE projection_name = $1"
        self.all = (
            f"SELECT projection_name, last_event_id, last_event_type, last_processed_at, "
            f"events_processed, global_position FROM {c} ORDER BY projection_name"
        )
        lag = f"""
            SELECT c.last_event_id, coalesce(c.events_processed, 0), c.last_processed_at,
                   b.behind, b.oldest_lag, b.latest_id, b.latest_position
              FROM {c} c
              CROSS JOIN LATERAL (
                SELECT (SELECT count(*) FROM {e}
                         WHERE global_position > coalesce(c.global_position, 0) {{f}}) AS behind,
                       (SELECT greatest(0, extract(epoch FROM clock_timestamp() - recorded_at))
                          FROM {e} WHERE global_position > coalesce(c.global_position, 0) {{f}}
                         ORDER BY global_position LIMIT 1) AS oldest_lag,
                       l.event_id AS latest_id, l.global_position AS latest_position
                  FROM (SELECT 1) one LEFT JOIN LATERAL (
                       SELECT event_id, global_position FROM {e}
                        WHERE global_position > coalesce(c.global_position, 0) {{f}}
                        ORDER BY global_position DESC LIMIT 1) l ON true
              ) b
             WHERE c.projection_name = $1"""
        self.lag = lag.format(f="")
        self.lag_typed = lag.format(f="AND event_type = ANY($2::text[])")


class PostgreSQLCheckpointTransaction:
    """An open transaction on :attr:`connection`; the checkpoint commits with the read model."""

    def __init__(
        self, connection: asyncpg.Connection, repository: PostgreSQLCheckpointRepository
    ) -> None:
        self.connection = connection
        self._repository = repository

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        await self._repository._save_position(
            self.connection, subscription_id, position, event_id, event_type, events
        )


class PostgreSQLCheckpointRepository(PoolOwner):
    """Checkpoints in the same database as the events, so lag metrics are one query.

    Pass an asyncpg pool, or use ``PostgreSQLCheckpointRepository.from_url(url)`` with
    ``async with``. asyncpg runs on asyncio only.

    With ``claims=True`` (the default) subscriptions on this repository claim their name, so
    one process at a time handles it, and checkpoint writes are fenced (see :mod:`.claims`).
    """

    OWN_OPTIONS = ("schema", "claims", "lease_seconds")

    #: Present only with ``claims=True``: the subscription runner then claims names.
    claim: Callable[[str], AbstractAsyncContextManager[PostgreSQLClaim]]

    def __init__(
        self,
        pool: asyncpg.Pool | None = None,
        *,
        schema: str = "public",
        url: str | None = None,
        pool_options: dict[str, Any] | None = None,
        claims: bool = True,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        super().__init__(pool, url, pool_options, schema)
        self._sql = _Queries(self.names)
        self._held = HeldConnection()
        self.claims: PostgreSQLClaims | None = None
        if claims:
            self.claims = PostgreSQLClaims(self._open_pool, self.names, lease_seconds=lease_seconds)
            self.claim = self.claims.claim

    # -- the port ------------------------------------------------------------------------------

    @translate_outages("reading a checkpoint")
    async def get_checkpoint(self, projection_name: str) -> UUID | None:
        pool = await self._open_pool()
        value: UUID | None = await pool.fetchval(self._sql.get_checkpoint, projection_name)
        return value

    @translate_outages("saving a checkpoint")
    async def update_checkpoint(
        self, projection_name: str, event_id: UUID, event_type: str
    ) -> None:
        validate_name(projection_name)
        pool = await self._open_pool()
        await self._write(pool, self._sql.update_checkpoint, projection_name, event_id, event_type)

    @translate_outages("reading a checkpoint")
    async def get_position(self, subscription_id: str) -> int | None:
        pool = await self._open_pool()
        value: int | None = await pool.fetchval(self._sql.get_position, subscription_id)
        return value

    async def close(self) -> None:
        """Give back the connection kept for saves; then close the pool if we opened it."""
        await self._held.release()
        await super().close()

    @translate_outages("saving a checkpoint")
    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        """One statement on a connection kept between saves (see :mod:`.held`)."""
        pool = await self._open_pool()
        async with self._held.use(pool) as executor:
            await self._save_position(
                executor, subscription_id, position, event_id, event_type, events
            )

    async def _save_position(
        self,
        executor: asyncpg.Pool | asyncpg.Connection,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        events: int,
    ) -> None:
        validate_name(subscription_id)
        if position < 0 or events < 0:
            raise ValueError(f"position and events must be >= 0, got {position} and {events}")
        token = None if self.claims is None else self.claims.tokens.get(subscription_id)
        args = (position, event_id, event_type, events, token)
        if token is not None:
            status = await executor.execute(self._sql.save_position_fenced, subscription_id, *args)
            if status != "UPDATE 0":
                return
        # No row yet, or its fence is not our token: the write that checks the claim row.
        await self._write(executor, self._sql.save_position, subscription_id, *args)

    @translate_outages("resetting a checkpoint")
    async def reset_checkpoint(self, projection_name: str) -> None:
        pool = await self._open_pool()
        await self._write(pool, self._sql.reset, projection_name)

    async def _write(
        self, executor: asyncpg.Pool | asyncpg.Connection, sql: str, name: str, *args: Any
    ) -> None:
        """A checkpoint write; fenced by the claim on ``name`` if this repository holds one."""
        if self.claims is None:
            await executor.execute(sql, name, *args)
        else:
            await self.claims.execute(executor, sql, name, *args)

    @translate_outages("reading checkpoints")
    async def get_all_checkpoints(self) -> list[CheckpointData]:
        pool = await self._open_pool()
        return [
            CheckpointData(
                projection_name=row[0],
                last_event_id=row[1],
                last_event_type=row[2],
                last_processed_at=row[3],
                events_processed=row[4] or 0,
                global_position=row[5],
            )
            for row in await pool.fetch(self._sql.all)
        ]

    @translate_outages("reading lag metrics")
    async def get_lag_metrics(
        self, projection_name: str, event_types: list[str] | None = None
    ) -> LagMetrics | None:
        pool = await self._open_pool()
        if event_types is None:
            row = await pool.fetchrow(self._sql.lag, projection_name)
        else:
            row = await pool.fetchrow(self._sql.lag_typed, projection_name, list(event_types))
        if row is None:
            return None
        last_id = None if row[0] is None else str(row[0])
        processed_at: datetime | None = row[2]
        return LagMetrics(
            projection_name=projection_name,
            last_event_id=last_id,
            latest_event_id=str(row[5]) if row[5] is not None else last_id,
            lag_seconds=float(row[4] or 0.0),
            events_processed=int(row[1]),
            last_processed_at=None if processed_at is None else processed_at.isoformat(),
            events_behind=int(row[3]),
            latest_position=row[6],
        )

    # -- exactly-once --------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgreSQLCheckpointTransaction]:
        """A transaction on one pool connection: commit on normal exit, roll back on error."""
        pool = await self._open_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield PostgreSQLCheckpointTransaction(conn, self)
        except Exception as exc:
            # Also when the projection met the outage first (its error names the cause).
            cause = exc if is_unavailable(exc) else exc.__cause__
            if cause is not None and is_unavailable(cause):
                raise unavailable_error(cause, "in a transaction") from exc
            raise
