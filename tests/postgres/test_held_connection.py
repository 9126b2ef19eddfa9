"""Checkpoint saves keep one pooled connection between them, and always give it back."""

from uuid import uuid4

import anyio
import asyncpg
import pytest

from eventsource_postgres import PostgreSQLCheckpointRepository

pytestmark = pytest.mark.anyio


async def test_saves_in_a_row_keep_one_connection_which_returns_when_idle(pg_pool, pg_schema):
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    repo._held.idle = 0.2
    await repo.initialize()
    await repo.save_position("held", 1, uuid4(), "T")
    held = repo._held._conn
    assert held is not None  # checked out of the pool between saves
    for position in range(2, 6):
        await repo.save_position("held", position, uuid4(), "T")
        assert repo._held._conn is held
    await anyio.sleep(0.6)
    assert repo._held._conn is None  # back in the pool after a quiet spell
    assert await repo.get_position("held") == 5


async def test_a_failed_save_gives_the_connection_back(pg_pool, pg_schema):
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    await repo.save_position("ok", 1, uuid4(), "T")
    with pytest.raises(asyncpg.PostgresError):
        async with repo._held.use(pg_pool) as executor:
            await executor.execute("SELECT 1 / 0")
    assert repo._held._conn is None
    await repo.save_position("ok", 2, uuid4(), "T")
    assert await repo.get_position("ok") == 2


async def test_a_pool_of_one_is_never_held(shared_dsn, pg_schema):
    pool = await asyncpg.create_pool(shared_dsn, min_size=1, max_size=1)
    try:
        repo = PostgreSQLCheckpointRepository(pool, schema=pg_schema, claims=False)
        await repo.save_position("single", 1, uuid4(), "T")
        assert repo._held._conn is None
        with anyio.fail_after(5):  # the one connection is free for everyone else
            assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_saves_from_several_subscriptions_at_once_all_land(pg_pool, pg_schema):
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    await repo.initialize()

    async def saves(name: str) -> None:
        for position in range(1, 21):
            await repo.save_position(name, position, uuid4(), "T")

    async with anyio.create_task_group() as tg:
        for index in range(4):
            tg.start_soon(saves, f"sub-{index}")
    for index in range(4):
        assert await repo.get_position(f"sub-{index}") == 20


async def test_closing_an_owned_pool_right_after_a_save_does_not_wait(shared_dsn, pg_schema):
    async with PostgreSQLCheckpointRepository.from_url(shared_dsn, schema=pg_schema) as repo:
        repo._held.idle = 60.0  # only close() can give it back in time
        await repo.save_position("closing", 1, uuid4(), "T")
        assert repo._held._conn is not None
        with anyio.fail_after(5):
            await repo.close()
    assert repo._held._conn is None
