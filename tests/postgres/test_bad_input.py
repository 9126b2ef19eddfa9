"""Bad URLs, unreachable servers, wrong credentials, foreign tables, newer schemas, hostile
names: each gets a specific error that says what to do, and nothing in the database changes."""

from __future__ import annotations

import socket
from uuid import uuid4

import asyncpg
import pytest

from eventsource_core import ConfigurationError, SchemaError, open_event_store
from eventsource_core.testing import make_events
from eventsource_postgres import (
    InvalidURLError,
    PostgresAuthenticationError,
    PostgresConnectionError,
    PostgreSQLCheckpointRepository,
    PostgreSQLEventStore,
)
from eventsource_postgres.schema import LATEST_VERSION

from .server import TEST_PASSWORD
from .target import PgTarget


async def open_and_close(url: str) -> None:
    async with PostgreSQLEventStore.from_url(url):
        pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@127.0.0.1:notaport/db",
        "postgresql://user@127.0.0.1:5432/db?sslmode=sometimes",
        "mysql://user@127.0.0.1/db",
    ],
)
async def test_a_malformed_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(InvalidURLError, match="postgresql://user:password@host"):
        await open_and_close(url)
    assert issubclass(InvalidURLError, ConfigurationError)


@pytest.mark.anyio
async def test_a_refused_connection_names_host_and_says_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(PostgresConnectionError, match="Check that the server runs") as info:
            await open_and_close(f"postgresql://u:secret@127.0.0.1:{port}/db")
    assert "secret" not in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value)


@pytest.mark.anyio
async def test_wrong_credentials_are_an_authentication_error_without_the_password(
    pg: PgTarget, pg_dsn: str
) -> None:
    bad = pg_dsn.replace(TEST_PASSWORD, "not-the-password")
    with pytest.raises(PostgresAuthenticationError, match="check the user name and password") as e:
        await open_and_close(bad)
    assert "not-the-password" not in str(e.value)
    with pytest.raises(PostgresAuthenticationError):
        await open_and_close(pg_dsn.replace("eventsource:", "nobody:"))
    assert await _tables(pg_dsn) == []


@pytest.mark.anyio
async def test_a_missing_database_says_to_create_it(pg_dsn: str) -> None:
    missing = pg_dsn.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(PostgresConnectionError, match="create the database"):
        await open_and_close(missing)


@pytest.mark.anyio
async def test_the_plugin_reports_bad_urls_the_same_way() -> None:
    with pytest.raises(InvalidURLError):
        async with open_event_store("postgres://user@127.0.0.1:notaport/db"):
            pass


@pytest.mark.anyio
async def test_a_foreign_events_table_is_refused_and_left_alone(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE events (id serial PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO events (body) VALUES ('theirs')")
        before = await _describe(conn)
        for opener in (PostgreSQLEventStore.from_url, PostgreSQLCheckpointRepository.from_url):
            with pytest.raises(SchemaError, match="did not create") as info:
                async with opener(pg_dsn):
                    pass
            assert "schema='eventsource'" in str(info.value)
        assert await _describe(conn) == before
        assert await conn.fetchval("SELECT body FROM events") == "theirs"
        # our tables can live next to theirs in another schema
        async with PostgreSQLEventStore.from_url(pg_dsn, schema="eventsource") as store:
            events = make_events(1)
            await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        assert await _describe(conn) == before
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_a_foreign_checkpoint_table_is_refused_too(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE projection_checkpoints (name text)")
        before = await _describe(conn)
        with pytest.raises(SchemaError, match="'projection_checkpoints'"):
            async with PostgreSQLEventStore.from_url(pg_dsn):
                pass
        assert await _describe(conn) == before
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_a_newer_schema_version_is_refused_and_nothing_changes(pg_dsn: str) -> None:
    async with PostgreSQLEventStore.from_url(pg_dsn) as store:
        events = make_events(2)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO eventsource_schema_version (version, description) VALUES ($1, 'future')",
            LATEST_VERSION + 1,
        )
        before = (await _describe(conn), await conn.fetch("SELECT * FROM events"))
        for opener in (PostgreSQLEventStore.from_url, PostgreSQLCheckpointRepository.from_url):
            with pytest.raises(SchemaError, match="upgrade the eventsource-postgres package"):
                async with opener(pg_dsn):
                    pass
        assert (await _describe(conn), await conn.fetch("SELECT * FROM events")) == before
    finally:
        await conn.close()


@pytest.mark.anyio
@pytest.mark.parametrize("schema", ["Robert'; DROP TABLE events; --", "a b", "x" * 70, ""])
async def test_a_hostile_schema_name_is_refused(schema: str) -> None:
    with pytest.raises(SchemaError, match="plain lower-case identifier"):
        PostgreSQLEventStore.from_url("postgresql://u@127.0.0.1/db", schema=schema)


HOSTILE_NAMES = [
    "Orders'); DROP TABLE projection_checkpoints; --",
    'Quote"Name',
    "back\\slash",
    "snowman ☃ and emoji 🧾",
    "x" * 200,
    "%_ like wildcards",
]


@pytest.mark.anyio
async def test_hostile_projection_names_are_stored_verbatim(pg_pool, pg_schema) -> None:
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    for position, name in enumerate(HOSTILE_NAMES, start=1):
        await repo.save_position(name, position, uuid4(), "T")
    names = [c.projection_name for c in await repo.get_all_checkpoints()]
    assert sorted(names) == sorted(HOSTILE_NAMES)
    for position, name in enumerate(HOSTILE_NAMES, start=1):
        assert await repo.get_position(name) == position
    await repo.reset_checkpoint("%_ like wildcards")
    assert len(await repo.get_all_checkpoints()) == len(HOSTILE_NAMES) - 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 201, "at most 200"),
        ("nul\x00byte", "NUL"),
    ],
)
async def test_unusable_projection_names_are_refused_before_any_write(
    pg_pool, pg_schema, name: str, message: str
) -> None:
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    await repo.save_position("Existing", 3, uuid4(), "T")
    with pytest.raises(ValueError, match=message):
        await repo.save_position(name, 1, uuid4(), "T")
    with pytest.raises(ValueError, match=message):
        await repo.update_checkpoint(name, uuid4(), "T")
    assert [c.projection_name for c in await repo.get_all_checkpoints()] == ["Existing"]


async def _describe(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """Every column of every table in the public schema."""
    rows = await conn.fetch(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2, 3"
    )
    return [tuple(r) for r in rows]


async def _tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
        return [r[0] for r in rows]
    finally:
        await conn.close()
