"""Tables, the append function, and versioned migrations.

Migrations run in one transaction under ``pg_advisory_xact_lock``, so any number of processes
may start at once against an empty database: one creates the schema, the others wait and then
find it current. Tables this package did not create are never altered or dropped.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]

from eventsource_core import SchemaError

__all__ = ["LATEST_VERSION", "Names", "ensure_schema"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Names:
    """Qualified names in one PostgreSQL schema (namespace)."""

    def __init__(self, schema: str = "public") -> None:
        if not _IDENTIFIER.match(schema):
            raise SchemaError(
                f"schema name {schema!r} is not a plain lower-case identifier; use letters, "
                "digits and underscores, for example schema='eventsource'"
            )
        self.schema = schema
        self.events = f'"{schema}".events'
        self.checkpoints = f'"{schema}".projection_checkpoints'
        self.versions = f'"{schema}".eventsource_schema_version'
        self.claims = f'"{schema}".eventsource_claims'
        self.claim_fence = f'"{schema}".eventsource_claim_fence'
        self.append = f'"{schema}".eventsource_append'
        self.channel = f"eventsource_{schema}"
        self.lock_key = f"eventsource.schema.{schema}"

    #: Unqualified names of every table the migrations create, to detect foreign objects.
    OWNED_TABLES = ("events", "projection_checkpoints", "eventsource_claims")
    #: The same for functions.
    OWNED_FUNCTIONS = ("eventsource_append", "eventsource_claim_fence")


Migration = Callable[[asyncpg.Connection, Names], Awaitable[None]]


async def _run(conn: asyncpg.Connection, statements: list[str]) -> None:
    for statement in statements:
        await conn.execute(statement)


async def _migration_1(conn: asyncpg.Connection, n: Names) -> None:
    await _run(conn, _migration_1_statements(n))


def _migration_1_statements(n: Names) -> list[str]:
    return [
        f"""
        CREATE TABLE {n.events} (
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
            CONSTRAINT events_stream_version_key
                UNIQUE (aggregate_type, aggregate_id, aggregate_version)
        )""",
        f"CREATE INDEX events_type_position_idx ON {n.events} (event_type, global_position)",
        f"""
        CREATE TABLE {n.checkpoints} (
            projection_name text PRIMARY KEY,
            last_event_id uuid,
            last_event_type text,
            last_processed_at timestamptz,
            events_processed bigint DEFAULT 0,
            global_position bigint,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )""",
        # One round trip per append. The first statement gives the transaction its xid *before*
        # the identity sequence hands out positions; the gap-safe reader relies on that order.
        f"""
        CREATE FUNCTION {n.append}(
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
              FROM {n.events} e
             WHERE e.aggregate_type = p_aggregate_type AND e.aggregate_id = p_aggregate_id;
            IF current_version <> p_expected THEN
                RAISE EXCEPTION USING ERRCODE = 'ES409', MESSAGE = current_version::text;
            END IF;
            RETURN QUERY
              INSERT INTO {n.events} AS e (event_id, event_type, aggregate_id, aggregate_type,
                     aggregate_version, occurred_at, metadata, payload)
              SELECT u.event_id, u.event_type, p_aggregate_id, p_aggregate_type,
                     u.version, u.occurred, u.metadata, u.payload
                FROM unnest(p_event_ids, p_event_types, p_versions, p_occurred, p_metadata,
                            p_payloads)
                     WITH ORDINALITY AS u(event_id, event_type, version, occurred, metadata,
                                          payload, n)
               ORDER BY u.n
              RETURNING e.global_position, e.recorded_at;
            PERFORM pg_notify('{n.channel}', '');
        END
        $fn$""",
    ]


#: The columns of ``eventsource_claims`` as versions before 2 created it outside the
#: migrations (on the first claim); such a table is adopted, anything else is refused.
_CLAIMS_COLUMNS = [
    ("name", "text", True),
    ("owner", "text", False),
    ("token", "bigint", True),
    ("expires_at", "timestamp with time zone", True),
]


async def _migration_2(conn: asyncpg.Connection, n: Names) -> None:
    """The claims table; one left by an older version (same columns) is kept with its tokens,
    since tokens must only grow."""
    if await _table_exists(conn, n.schema, "eventsource_claims"):
        if await _columns(conn, n.schema, "eventsource_claims") != _CLAIMS_COLUMNS:
            differs = "its columns differ"
        elif await _primary_key(conn, n.schema, "eventsource_claims") != ["name"]:
            differs = "its primary key is not (name)"  # claims rely on ON CONFLICT (name)
        else:
            return
        raise SchemaError(
            f"schema {n.schema!r} already has a table 'eventsource_claims' that eventsource "
            f"did not create ({differs}). Nothing was changed; rename or drop that table, or "
            "pass schema='eventsource' to keep our tables apart"
        )
    await conn.execute(
        f"CREATE TABLE {n.claims} (name text PRIMARY KEY, owner text, "
        "token bigint NOT NULL, expires_at timestamptz NOT NULL)"
    )


async def _migration_3(conn: asyncpg.Connection, n: Names) -> None:
    """The fence: each checkpoint row carries the token of the claim that may write it.

    Taking a claim (any change of ``token``, however made) moves the fence of that name's
    checkpoint row in the same transaction, so an owner's checkpoint save needs no lock on the
    claim row: it updates the row only while the fence equals its token.
    """
    await _run(
        conn,
        [
            f"ALTER TABLE {n.checkpoints} ADD COLUMN fence bigint",
            f"UPDATE {n.checkpoints} c SET fence = l.token FROM {n.claims} l "
            "WHERE l.name = c.projection_name",
            f"""
            CREATE FUNCTION {n.claim_fence}() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                UPDATE {n.checkpoints} SET fence = NEW.token
                 WHERE projection_name = NEW.name AND (fence IS NULL OR fence < NEW.token);
                RETURN NULL;
            END
            $fn$""",
            f"CREATE TRIGGER eventsource_claims_fence AFTER INSERT OR UPDATE OF token "
            f"ON {n.claims} FOR EACH ROW EXECUTE FUNCTION {n.claim_fence}()",
        ],
    )


MIGRATIONS: dict[int, tuple[str, Migration]] = {
    1: ("events, checkpoints, append function", _migration_1),
    2: ("claims", _migration_2),
    3: ("checkpoint fence", _migration_3),
}
LATEST_VERSION = max(MIGRATIONS)


async def _table_exists(conn: asyncpg.Connection, schema: str, table: str) -> bool:
    """Ask the catalog tables (not the per-session cache, which can lag a concurrent creator)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s "
        "ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2)",
        schema,
        table,
    )
    return found


async def _columns(
    conn: asyncpg.Connection, schema: str, table: str
) -> list[tuple[str, str, bool]]:
    """``(name, type, not null)`` of each column, in order."""
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace "
        "WHERE s.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        schema,
        table,
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def _primary_key(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    """The primary key's columns, in key order; empty without one."""
    rows = await conn.fetch(
        "SELECT a.attname FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
        "JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE s.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.n",
        schema,
        table,
    )
    return [row[0] for row in rows]


async def _current_version(conn: asyncpg.Connection, n: Names) -> int | None:
    """The applied version, or ``None`` when our version table does not exist."""
    if not await _table_exists(conn, n.schema, "eventsource_schema_version"):
        return None
    version = await conn.fetchval(f"SELECT max(version) FROM {n.versions}")
    return int(version or 0)


async def ensure_schema(conn: asyncpg.Connection, names: Names) -> int:
    """Create or migrate the schema; returns the version now in place."""
    version = await _current_version(conn, names)
    if version == LATEST_VERSION:
        return version
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", names.lock_key
            )
            if names.schema != "public":
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{names.schema}"')
            version = await _current_version(conn, names)
            if version is None:
                await _refuse_foreign_objects(conn, names)
                await conn.execute(
                    f"CREATE TABLE {names.versions} (version integer PRIMARY KEY, "
                    "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                version = 0
            if version > LATEST_VERSION:
                raise SchemaError(
                    f"schema {names.schema!r} is at eventsource version {version}, newer than "
                    f"this eventsource-postgres knows ({LATEST_VERSION}); upgrade the "
                    "eventsource-postgres package. Nothing was changed"
                )
            for number in range(version + 1, LATEST_VERSION + 1):
                description, migrate = MIGRATIONS[number]
                await migrate(conn, names)
                await conn.execute(
                    f"INSERT INTO {names.versions} (version, description) VALUES ($1, $2)",
                    number,
                    description,
                )
    except asyncpg.InsufficientPrivilegeError as exc:
        raise SchemaError(
            f"cannot create the eventsource tables in schema {names.schema!r}: {exc}. Grant "
            "CREATE on the schema to this user, or run once as a user who may"
        ) from exc
    except (asyncpg.DuplicateFunctionError, asyncpg.DuplicateObjectError) as exc:
        raise SchemaError(
            f"cannot upgrade the eventsource schema {names.schema!r}: {exc}, which eventsource "
            "did not create. Nothing was changed; rename or drop it, or use another schema"
        ) from exc
    return LATEST_VERSION


async def _refuse_foreign_objects(conn: asyncpg.Connection, names: Names) -> None:
    for table in Names.OWNED_TABLES:
        if await _table_exists(conn, names.schema, table):
            raise SchemaError(
                f"schema {names.schema!r} already has a table {table!r} that eventsource did "
                "not create (there is no eventsource_schema_version table). Nothing was "
                "changed; use another database, or pass schema='eventsource' to keep our "
                "tables apart"
            )
    found = await conn.fetchval(
        "SELECT min(p.proname) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace "
        "WHERE s.nspname = $1 AND p.proname = ANY($2::text[])",
        names.schema,
        list(Names.OWNED_FUNCTIONS),
    )
    if found is not None:
        raise SchemaError(
            f"schema {names.schema!r} has a function {found} but no "
            "eventsource_schema_version table; it was not created by this package. Nothing "
            "was changed; drop it or use another schema"
        )
