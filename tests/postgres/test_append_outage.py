"""Appends during an outage raise ``StorageUnavailableError`` and say what may have been written.

Two situations differ for the caller. If the server could not be reached before the append was
sent, nothing was written and appending again is all there is to do. If the connection broke
after it was sent, the commit may or may not have happened, and the caller has to look first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest

from eventsource_core import StorageUnavailableError
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLEventStore

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(120)
async def test_an_append_while_the_server_is_down_raises_and_works_again_after(
    pg, pg_dsn: str
) -> None:
    server = pg.require_server()
    # The throwaway server commits asynchronously; a crash would forget the schema itself.
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(
            f"ALTER DATABASE {urlsplit(pg_dsn).path[1:]} SET synchronous_commit = on"
        )
    finally:
        await admin.close()
    first = make_events(1)
    head = first[0]
    second = make_events(2, head.aggregate_id, start_version=2)
    try:
        async with PostgreSQLEventStore.from_url(pg_dsn, min_size=1, max_size=2) as store:
            await store.append(head.aggregate_id, head.aggregate_type, first, 0)
            await anyio.to_thread.run_sync(server.stop, "immediate")

            with pytest.raises(StorageUnavailableError) as raised:
                await store.append(head.aggregate_id, head.aggregate_type, second, 1)
            message = str(raised.value)
            assert f"appending to {head.aggregate_type}-{head.aggregate_id}" in message
            assert "nothing was written; append again once the server is back" in message
            assert raised.value.__cause__ is not None  # the driver's error, kept
            with pytest.raises(StorageUnavailableError):
                await store.stream_version(head.aggregate_id, head.aggregate_type)
            with pytest.raises(StorageUnavailableError):
                await store.read_stream(head.aggregate_id, head.aggregate_type)

            await anyio.to_thread.run_sync(server.start)
            stored = await store.append(head.aggregate_id, head.aggregate_type, second, 1)
            assert [s.event.aggregate_version for s in stored] == [2, 3]
            in_stream = await store.read_stream(head.aggregate_id, head.aggregate_type)
            assert [s.event.event_id for s in in_stream] == [e.event_id for e in first + second]
    finally:
        if not server.is_running():
            server.start()


async def _cut_off(
    pool: asyncpg.Pool, schema: str, append: Callable[[], Awaitable[object]]
) -> StorageUnavailableError:
    """Run ``append`` while the events table is locked; end its server session while it waits
    for the lock, that is after the append was sent and before it could commit."""
    async with pool.acquire() as blocker, blocker.transaction():
        await blocker.execute(f"LOCK TABLE {schema}.events IN EXCLUSIVE MODE")
        task = asyncio.ensure_future(append())
        with anyio.fail_after(10):
            while True:
                pid = await pool.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE $1",
                    f'%"{schema}".eventsource_append%',
                )
                if pid is not None:
                    break
                assert not task.done(), task
                await anyio.sleep(0.02)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(StorageUnavailableError) as raised:
            await asyncio.wait_for(task, 10)
    return raised.value


async def test_an_append_cut_off_after_it_was_sent_says_the_outcome_is_unknown(
    pg_pool, pg_schema, shared_dsn
) -> None:
    async with PostgreSQLEventStore.from_url(shared_dsn, schema=pg_schema, max_size=2) as store:
        events = make_events(2)
        head = events[0]
        error = await _cut_off(
            pg_pool,
            pg_schema,
            lambda: store.append(head.aggregate_id, head.aggregate_type, events, 0),
        )
        message = str(error)
        assert "it may have committed before the connection dropped" in message
        assert f"Check stream_version() of {head.aggregate_type}-{head.aggregate_id}" in message
        assert "nothing was written" not in message
        # Here the session ended before its commit, so the events are not there; appending
        # them again with the same expected version works.
        assert await store.stream_version(head.aggregate_id, head.aggregate_type) == 0
        stored = await store.append(head.aggregate_id, head.aggregate_type, events, 0)
        assert len(stored) == 2


async def test_an_append_in_your_transaction_cut_off_says_the_transaction_was_lost(
    pg_pool, pg_schema, shared_dsn
) -> None:
    async with PostgreSQLEventStore.from_url(shared_dsn, schema=pg_schema, max_size=2) as store:
        events = make_events(1)
        head = events[0]
        async with store.pool.acquire() as mine:
            transaction = mine.transaction()
            await transaction.start()
            error = await _cut_off(
                pg_pool,
                pg_schema,
                lambda: store.append(
                    head.aggregate_id, head.aggregate_type, events, 0, connection=mine
                ),
            )
        assert "your transaction was not committed, so nothing of it was written" in str(error)
        assert await store.stream_version(head.aggregate_id, head.aggregate_type) == 0
