"""A real PostgreSQL for every test in this folder.

Set ``EVENTSOURCE_TEST_POSTGRES_DSN`` to use an existing server (its user needs CREATEDB);
otherwise a throwaway server is started once per session. Each test gets its own fresh database.
Under CI (``CI`` set) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from .target import PgTarget, pg_target

_counter = itertools.count()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncpg runs on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def pg() -> Iterator[PgTarget]:
    with pg_target() as target:
        yield target


@pytest.fixture
async def pg_dsn(pg: PgTarget) -> str:
    """A URL to a fresh, empty database (about 0.3 s; prefer ``pg_schema`` when it will do)."""
    return await pg.fresh_database()


@pytest.fixture(scope="session")
async def shared_dsn(pg: PgTarget) -> str:
    """One database for the fast tests; each of them works in its own schema."""
    return await pg.fresh_database()


@pytest.fixture
async def pg_schema(shared_dsn: str) -> str:
    """A fresh, empty schema name in the shared database (about 1 ms)."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(shared_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    return name


@pytest.fixture
async def pg_pool(shared_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the shared database; pass ``schema=pg_schema`` to the store and repository."""
    pool = await asyncpg.create_pool(shared_dsn, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()
