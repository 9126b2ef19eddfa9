"""One owner per subscription: leases, fencing tokens, release and take-over on a real server.

The in-process tests below drive :class:`PostgreSQLClaims` directly; the multi-process test at
the end starts three real worker processes and ``kill -9``s the owner.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest

from eventsource_core import OwnershipLostError
from eventsource_postgres import PostgreSQLCheckpointRepository

pytestmark = pytest.mark.anyio

LEASE = 1.0  # seconds; short so the in-process tests expire leases quickly


async def _expire(pool: asyncpg.Pool, schema: str, name: str) -> None:
    """What a paused owner looks like from outside: its lease has run out."""
    await pool.execute(
        f"UPDATE {schema}.eventsource_claims SET expires_at = clock_timestamp() - interval '1 s' "
        "WHERE name = $1",
        name,
    )


async def _checkpoint(pool: asyncpg.Pool, schema: str, name: str) -> tuple[int, int] | None:
    row = await pool.fetchrow(
        f"SELECT global_position, events_processed FROM {schema}.projection_checkpoints "
        "WHERE projection_name = $1",
        name,
    )
    return None if row is None else (row[0], row[1])


async def _write_read_model_and_checkpoint(
    repo: PostgreSQLCheckpointRepository, schema: str
) -> None:
    async with repo.transaction() as tx:
        await tx.connection.execute(f"CREATE TABLE {schema}.read_model (x int)")
        await tx.save_position("P", 9, uuid4(), "Deposited", events=4)


async def test_claims_are_on_by_default_and_can_be_turned_off(pg_pool, pg_schema) -> None:
    on = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema)
    off = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    assert hasattr(on, "claim") and on.claims is not None
    assert on.claims.lease_seconds == 10.0
    assert not hasattr(off, "claim") and off.claims is None


async def test_a_second_claim_waits_until_the_first_is_released(pg_pool, pg_schema) -> None:
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=LEASE) as a,
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=LEASE) as b,
    ):
        assert a.claims is not None and b.claims is not None
        async with a.claim("P") as first:
            waiting = asyncio.ensure_future(b.claims.claim("P").__aenter__())
            await asyncio.sleep(3 * LEASE)  # several renewals: the lease stays with a
            assert not waiting.done()
            assert not first.lost
        second = await asyncio.wait_for(waiting, 10)
        try:
            assert second.token == first.token + 1
            assert b.claims.tokens == {"P": second.token}
            assert a.claims.tokens == {}
        finally:
            second._mark_lost()


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    pg_pool, pg_schema
) -> None:
    event = uuid4()
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as stale,
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as fresh,
    ):
        async with stale.claim("P") as old:
            await stale.save_position("P", 5, event, "Deposited", events=5)
            await _expire(pg_pool, pg_schema, "P")  # as if the owner paused past its lease
            async with fresh.claim("P") as new:
                assert new.token == old.token + 1
                before = await _checkpoint(pg_pool, pg_schema, "P")
                with pytest.raises(OwnershipLostError, match="no longer owns"):
                    await stale.save_position("P", 9, event, "Deposited", events=4)
                with pytest.raises(OwnershipLostError):
                    await stale.update_checkpoint("P", uuid4(), "Deposited")
                with pytest.raises(OwnershipLostError):
                    await stale.reset_checkpoint("P")
                with pytest.raises(OwnershipLostError):
                    await _write_read_model_and_checkpoint(stale, pg_schema)
                assert await _checkpoint(pg_pool, pg_schema, "P") == before == (5, 5)
                assert (
                    await pg_pool.fetchval("SELECT to_regclass($1)", f"{pg_schema}.read_model")
                    is None
                )  # the stale transaction rolled back as a whole
                await fresh.save_position("P", 7, event, "Deposited", events=2)
                await asyncio.wait_for(old.wait_lost(), 10 * LEASE)  # its renewal failed
        assert await _checkpoint(pg_pool, pg_schema, "P") == (7, 7)


async def test_a_write_waits_for_the_claim_row_so_a_take_over_cannot_slip_between(
    pg_pool, pg_schema
) -> None:
    """The fence locks the claim row: a take-over that commits first makes the write fail."""
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as r:
        async with r.claim("P") as claim:
            async with pg_pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"UPDATE {pg_schema}.eventsource_claims SET token = token + 1, owner = 'x' "
                    "WHERE name = $1",
                    "P",
                )
                write = asyncio.ensure_future(r.save_position("P", 3, uuid4(), "Deposited"))
                await asyncio.sleep(0.3)
                assert not write.done()  # blocked on the row lock of the take-over
            with pytest.raises(OwnershipLostError, match=f"token {claim.token} is stale"):
                await asyncio.wait_for(write, 10)
        assert await _checkpoint(pg_pool, pg_schema, "P") is None


async def test_unclaimed_names_are_written_without_a_fence(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        await repo.save_position("Q", 2, uuid4(), "Deposited", events=2)
        assert await repo.get_position("Q") == 2
        await repo.reset_checkpoint("Q")
        assert await repo.get_position("Q") is None


async def test_a_released_claim_keeps_its_token_so_tokens_only_grow(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        tokens = []
        for _ in range(3):
            async with repo.claim("P") as claim:
                tokens.append(claim.token)
        assert tokens == [1, 2, 3]
        row = await pg_pool.fetchrow(
            f"SELECT owner, token FROM {pg_schema}.eventsource_claims WHERE name = 'P'"
        )
        assert row["owner"] is None and row["token"] == 3
