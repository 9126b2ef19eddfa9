"""A real PostgreSQL for every test in this folder.

Set ``EVENTSOURCE_TEST_POSTGRES_DSN`` to use an existing server (its user needs CREATEDB);
otherwise a throwaway server is started once per session. Each test gets its own fresh database.
Under CI (``CI`` set) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from .server import PostgresServer, ServerUnavailable

DSN_ENV = "EVENTSOURCE_TEST_POSTGRES_DSN"
_counter = itertools.count()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncpg runs on asyncio only."""
    return "asyncio"


class PgTarget:
    """Where tests connect, and how to make a fresh database there."""

    def __init__(self, server: PostgresServer | None, external_dsn: str | None) -> None:
        self.server = server
        self.external_dsn = external_dsn

    def dsn(self, database: str) -> str:
        if self.server is not None:
            return self.server.dsn(database)
        assert self.external_dsn is not None
        parts = urlsplit(self.external_dsn)
        return urlunsplit(parts._replace(path="/" + database))

    def admin_dsn(self) -> str:
        if self.server is not None:
            return self.server.admin_dsn()
        assert self.external_dsn is not None
        return self.external_dsn

    async def fresh_database(self) -> str:
        """Create an empty database owned by the test role; returns its URL."""
        name = f"es_test_{os.getpid()}_{next(_counter)}"
        conn = await asyncpg.connect(self.admin_dsn())
        try:
            owner = "" if self.server is None else " OWNER eventsource"
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE template0{owner}")
        finally:
            await conn.close()
        return self.dsn(name)

    def require_server(self) -> PostgresServer:
        """The managed server, for tests that stop and start it; skips with an external DSN."""
        if self.server is None:
            pytest.skip(f"stopping the server needs the managed server; unset {DSN_ENV}")
        return self.server


@pytest.fixture(scope="session")
def pg() -> Iterator[PgTarget]:
    external = os.environ.get(DSN_ENV)
    if external:
        yield PgTarget(None, external)
        return
    try:
        server = PostgresServer.create()
    except (ServerUnavailable, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL server available: {exc}")
    try:
        yield PgTarget(server, None)
    finally:
        server.destroy()


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
