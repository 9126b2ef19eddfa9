"""Where PostgreSQL tests connect: a throwaway server, or the one ``EVENTSOURCE_TEST_POSTGRES_DSN``
names (its user needs CREATEDB). Under CI (``CI`` set) a missing server is a failure, not a skip.
Shared by the PostgreSQL tests and the docs tests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from .server import PostgresServer, ServerUnavailable

__all__ = ["DSN_ENV", "PgTarget", "pg_target"]

DSN_ENV = "EVENTSOURCE_TEST_POSTGRES_DSN"
_counter = itertools.count()


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


@contextmanager
def pg_target() -> Iterator[PgTarget]:
    """The configured server, or a throwaway one destroyed on exit; skips (fails under CI)
    when neither is available."""
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
