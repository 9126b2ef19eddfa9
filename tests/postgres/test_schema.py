"""Schema creation: many processes at once, URLs through the plugin, one version row each."""

from __future__ import annotations

import sys

import anyio
import asyncpg
import pytest

from eventsource_core import open_checkpoint_repository, open_event_store
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore
from eventsource_postgres.schema import LATEST_VERSION

STARTER = """
import asyncio, sys
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLEventStore

async def main():
    async with PostgreSQLEventStore.from_url(sys.argv[1], min_size=1, max_size=2) as store:
        events = make_events(3)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)

asyncio.run(main())
"""


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_processes_and_tasks_starting_at_once_create_the_schema_once(pg_dsn: str) -> None:
    procs = [
        await anyio.open_process([sys.executable, "-c", STARTER, pg_dsn], stdout=None)
        for _ in range(6)
    ]

    async def start_in_task() -> None:
        async with PostgreSQLCheckpointRepository.from_url(pg_dsn, max_size=2) as repo:
            assert await repo.get_all_checkpoints() == []

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(start_in_task)
    for proc in procs:
        with anyio.fail_after(60):
            await proc.wait()
        assert proc.stderr is not None
        assert proc.returncode == 0, (await proc.stderr.receive()).decode()
    conn = await asyncpg.connect(pg_dsn)
    try:
        versions = await conn.fetch("SELECT version FROM eventsource_schema_version")
        assert [r[0] for r in versions] == list(range(1, LATEST_VERSION + 1))
        assert await conn.fetchval("SELECT count(*) FROM events") == 18
    finally:
        await conn.close()


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_both_schemes_open_through_the_plugins(pg_dsn: str, scheme: str) -> None:
    url = scheme + pg_dsn[len("postgresql") :]
    async with open_event_store(url) as store, open_checkpoint_repository(url) as repo:
        assert isinstance(store, PostgreSQLEventStore)
        assert isinstance(repo, PostgreSQLCheckpointRepository)
        events = make_events(2)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.save_position("P", stored[-1].global_position, events[-1].event_id, "T")
        lag = await repo.get_lag_metrics("P")
        assert lag is not None and lag.events_behind == 0


@pytest.mark.anyio
async def test_a_store_on_a_borrowed_pool_leaves_the_pool_open(pg_pool, pg_schema) -> None:
    async with PostgreSQLEventStore(pg_pool, schema=pg_schema) as store:
        assert await store.current_position() == 0
    assert await pg_pool.fetchval("SELECT 1") == 1
