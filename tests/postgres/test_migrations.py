"""Upgrading a schema created by an older version in place, and refusing tables we did not make.

``V1_DDL`` is the schema as version 1 of this package created it, written out here on purpose:
the migrations must keep upgrading it however the current code changes. Version 1 made the
claims table outside the migrations, on the first claim, with ``V1_CLAIMS``.
"""

from __future__ import annotations

from uuid import uuid4

import anyio
import asyncpg
import pytest

from eventsource_core import SchemaError
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore
from eventsource_postgres.schema import LATEST_VERSION

pytestmark = pytest.mark.anyio

V1_DDL = """
CREATE TABLE {s}.eventsource_schema_version (version integer PRIMARY KEY,
    description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {s}.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    aggregate_id uuid NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_version integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    metadata jsonb,
    payload jsonb NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE INDEX events_type_position_idx ON {s}.events (event_type, global_position);
CREATE TABLE {s}.projection_checkpoints (
    projection_name text PRIMARY KEY,
    last_event_id uuid,
    last_event_type text,
    last_processed_at timestamptz,
    events_processed bigint DEFAULT 0,
    global_position bigint,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE FUNCTION {s}.eventsource_append(
    p_aggregate_id uuid, p_aggregate_type text, p_expected integer,
    p_event_ids uuid[], p_event_types text[], p_versions integer[],
    p_occurred timestamptz[], p_metadata jsonb[], p_payloads jsonb[]
) RETURNS TABLE (global_position bigint, recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    current_version integer;
BEGIN
    PERFORM pg_current_xact_id();
    SELECT coalesce(max(e.aggregate_version), 0) INTO current_version
      FROM {s}.events e
     WHERE e.aggregate_type = p_aggregate_type AND e.aggregate_id = p_aggregate_id;
    IF current_version <> p_expected THEN
        RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = current_version::text;
    END IF;
    RETURN QUERY
      INSERT INTO {s}.events AS e (event_id, event_type, aggregate_id, aggregate_type,
             aggregate_version, occurred_at, metadata, payload)
      SELECT u.event_id, u.event_type, p_aggregate_id, p_aggregate_type,
             u.version, u.occurred, u.metadata, u.payload
        FROM unnest(p_event_ids, p_event_types, p_versions, p_occurred, p_metadata, p_payloads)
             WITH ORDINALITY AS u(event_id, event_type, version, occurred, metadata, payload, n)
       ORDER BY u.n
      RETURNING e.global_position, e.recorded_at;
    PERFORM pg_notify('eventsource_{s}', '');
END
$fn$;
INSERT INTO {s}.eventsource_schema_version (version, description)
VALUES (1, 'events, checkpoints, append function');
"""

V1_CLAIMS = """
CREATE TABLE IF NOT EXISTS {s}.eventsource_claims (name text PRIMARY KEY, owner text,
    token bigint NOT NULL, expires_at timestamptz NOT NULL)
"""


async def _v1(pool: asyncpg.Pool, schema: str, *, claims: bool) -> None:
    """A schema as version 1 left it, with a checkpoint (and a used claim) in it."""
    await pool.execute(V1_DDL.format(s=schema))
    await pool.execute(
        f"INSERT INTO {schema}.projection_checkpoints (projection_name, global_position, "
        "last_event_id, last_event_type, events_processed, created_at, updated_at) "
        "VALUES ('Balances', 41, $1, 'Deposited', 41, now(), now())",
        uuid4(),
    )
    if claims:
        await pool.execute(V1_CLAIMS.format(s=schema))
        await pool.execute(
            f"INSERT INTO {schema}.eventsource_claims VALUES ('Balances', NULL, 7, 'epoch')"
        )


async def _versions(pool: asyncpg.Pool, schema: str) -> list[int]:
    rows = await pool.fetch(f"SELECT version FROM {schema}.eventsource_schema_version")
    return sorted(r[0] for r in rows)


async def _tables(pool: asyncpg.Pool, schema: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("had_claims", [False, True], ids=["never-claimed", "claimed"])
async def test_a_version_1_schema_upgrades_in_place(pg_pool, pg_schema, had_claims) -> None:
    await _v1(pg_pool, pg_schema, claims=had_claims)
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        assert await _versions(pg_pool, pg_schema) == list(range(1, LATEST_VERSION + 1))
        checkpoints = await repo.get_all_checkpoints()
        assert [
            (c.projection_name, c.global_position, c.events_processed) for c in checkpoints
        ] == [("Balances", 41, 41)]
        fence = f"SELECT fence FROM {pg_schema}.projection_checkpoints"
        # The fence starts at the current token of a kept claims table.
        assert await pg_pool.fetchval(fence) == (7 if had_claims else None)
        async with repo.claim("Balances") as claim:
            # A kept claims table keeps its tokens: they must only grow.
            assert claim.token == (8 if had_claims else 1)
            assert await pg_pool.fetchval(fence) == claim.token
            await repo.save_position("Balances", 42, uuid4(), "Deposited")
        assert await repo.get_position("Balances") == 42
    async with PostgreSQLEventStore(pg_pool, schema=pg_schema) as store:
        events = make_events(2)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        assert [s.global_position for s in stored] == [1, 2]


async def test_an_empty_schema_gets_the_claims_table_from_the_migrations(
    pg_pool, pg_schema
) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False):
        assert "eventsource_claims" in await _tables(pg_pool, pg_schema)
        assert await _versions(pg_pool, pg_schema) == list(range(1, LATEST_VERSION + 1))


async def test_a_foreign_claims_table_in_a_new_schema_is_refused(pg_pool, pg_schema) -> None:
    await pg_pool.execute(f"CREATE TABLE {pg_schema}.eventsource_claims (id int PRIMARY KEY)")
    with pytest.raises(SchemaError, match="'eventsource_claims' that eventsource did not create"):
        async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema):
            pass
    assert await _tables(pg_pool, pg_schema) == ["eventsource_claims"]  # nothing created


async def test_a_foreign_claims_table_in_a_version_1_schema_is_refused_and_kept(
    pg_pool, pg_schema
) -> None:
    await _v1(pg_pool, pg_schema, claims=False)
    await pg_pool.execute(
        f"CREATE TABLE {pg_schema}.eventsource_claims (name text PRIMARY KEY, paid boolean)"
    )
    await pg_pool.execute(f"INSERT INTO {pg_schema}.eventsource_claims VALUES ('invoice', true)")
    with pytest.raises(SchemaError, match="its columns differ") as raised:
        async with PostgreSQLEventStore(pg_pool, schema=pg_schema):
            pass
    assert "Nothing was changed" in str(raised.value)
    assert await _versions(pg_pool, pg_schema) == [1]
    rows = await pg_pool.fetch(f"SELECT * FROM {pg_schema}.eventsource_claims")
    assert [tuple(r) for r in rows] == [("invoice", True)]


async def test_a_claims_table_without_its_primary_key_is_refused_and_kept(
    pg_pool, pg_schema
) -> None:
    """Same columns, but no key on name: claims could not use ON CONFLICT (name) on it."""
    await _v1(pg_pool, pg_schema, claims=False)
    await pg_pool.execute(V1_CLAIMS.format(s=pg_schema).replace("PRIMARY KEY", "NOT NULL"))
    with pytest.raises(SchemaError, match=r"its primary key is not \(name\)"):
        async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema):
            pass
    assert await _versions(pg_pool, pg_schema) == [1]
    assert "eventsource_claims" in await _tables(pg_pool, pg_schema)


async def test_a_foreign_function_in_the_way_of_an_upgrade_is_refused_and_kept(
    pg_pool, pg_schema
) -> None:
    await _v1(pg_pool, pg_schema, claims=False)
    await pg_pool.execute(
        f"CREATE FUNCTION {pg_schema}.eventsource_claim_fence() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
    )
    with pytest.raises(SchemaError, match=r"eventsource_claim_fence.*Nothing was changed"):
        async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema):
            pass
    assert await _versions(pg_pool, pg_schema) == [1]
    assert "eventsource_claims" not in await _tables(pg_pool, pg_schema)


@pytest.mark.timeout(120)
async def test_many_repositories_upgrading_one_version_1_schema_at_once(
    pg_dsn: str,
) -> None:
    """Each on its own pool, so the advisory lock really serialises separate sessions."""
    setup = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        await _v1(setup, "public", claims=True)
        tokens: list[int] = []

        async def start_and_claim() -> None:
            async with PostgreSQLCheckpointRepository.from_url(
                pg_dsn, max_size=2, lease_seconds=1.0
            ) as repo:
                async with repo.claim("Balances") as claim:
                    tokens.append(claim.token)
                assert await repo.get_position("Balances") == 41

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(start_and_claim)
        assert sorted(tokens) == list(range(8, 14))  # one claim after another, none reused
        assert await _versions(setup, "public") == list(range(1, LATEST_VERSION + 1))
    finally:
        await setup.close()
