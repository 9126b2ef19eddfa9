"""The fence on the checkpoint row: an owner's saves take no lock on the claim row, a take-over
moves the fence in its own transaction, and a stale owner's save is still refused."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest

from eventsource_core import OwnershipLostError
from eventsource_postgres import PostgreSQLCheckpointRepository

pytestmark = pytest.mark.anyio


async def _row(pool: asyncpg.Pool, schema: str, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT global_position, events_processed, last_event_id, fence "
        f"FROM {schema}.projection_checkpoints WHERE projection_name = $1",
        name,
    )


async def test_an_owners_save_does_not_wait_for_the_claim_row(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as r:
        async with r.claim("P") as claim:
            await r.save_position("P", 1, uuid4(), "Deposited")  # creates the row
            row = await _row(pg_pool, pg_schema, "P")
            assert row is not None and row["fence"] == claim.token
            async with pg_pool.acquire() as other, other.transaction():
                await other.execute(
                    f"SELECT 1 FROM {pg_schema}.eventsource_claims WHERE name = 'P' FOR UPDATE"
                )
                # Would wait for the lock above if the save locked the claim row.
                await asyncio.wait_for(r.save_position("P", 2, uuid4(), "Deposited"), 5)
                async with r.transaction() as tx:
                    await asyncio.wait_for(tx.save_position("P", 3, uuid4(), "Deposited"), 5)
        assert await r.get_position("P") == 3


async def test_an_owners_saves_never_go_backwards_nor_count_twice(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        ten, seven, twelve = uuid4(), uuid4(), uuid4()
        async with repo.claim("P"):
            await repo.save_position("P", 10, ten, "Deposited", events=3)
            await repo.save_position("P", 10, ten, "Deposited", events=3)  # same again
            await repo.save_position("P", 7, seven, "Withdrawn", events=1)  # older
            row = await _row(pg_pool, pg_schema, "P")
            assert row is not None and tuple(row)[:3] == (10, 3, ten)
            await repo.save_position("P", 12, twelve, "Deposited", events=2)
        row = await _row(pg_pool, pg_schema, "P")
        assert row is not None and tuple(row)[:3] == (12, 5, twelve)
        checkpoint = (await repo.get_all_checkpoints())[0]
        assert checkpoint.last_event_type == "Deposited"


async def test_a_take_over_moves_the_fence_however_it_is_made(pg_pool, pg_schema) -> None:
    """Even a token changed by hand moves the fence, and the old owner's save waits for it."""
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as r,
        r.claim("P") as claim,
    ):
        await r.save_position("P", 4, uuid4(), "Deposited", events=4)
        async with pg_pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE {pg_schema}.eventsource_claims SET token = token + 1, owner = 'x' "
                "WHERE name = 'P'"
            )
            write = asyncio.ensure_future(r.save_position("P", 5, uuid4(), "Deposited"))
            await asyncio.sleep(0.3)
            assert not write.done()  # waits for the checkpoint row the take-over moved
        with pytest.raises(OwnershipLostError, match=f"token {claim.token} is stale"):
            await asyncio.wait_for(write, 10)
        row = await _row(pg_pool, pg_schema, "P")
        assert row is not None and (row["global_position"], row["fence"]) == (
            4,
            claim.token + 1,
        )


async def test_a_take_over_waits_for_an_owners_open_transaction(pg_pool, pg_schema) -> None:
    """The old owner's save came first: the take-over commits after it, and keeps it."""
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as r,
        r.claim("P") as claim,
    ):
        await r.save_position("P", 4, uuid4(), "Deposited", events=4)
        async with r.transaction() as tx:
            await tx.save_position("P", 6, uuid4(), "Deposited", events=2)
            take_over = asyncio.ensure_future(
                pg_pool.execute(
                    f"UPDATE {pg_schema}.eventsource_claims SET token = token + 1, "
                    "owner = 'x' WHERE name = 'P'"
                )
            )
            await asyncio.sleep(0.3)
            assert not take_over.done()  # its fence update waits for our row lock
        await asyncio.wait_for(take_over, 10)
        row = await _row(pg_pool, pg_schema, "P")
        assert row is not None and (row["global_position"], row["fence"]) == (
            6,
            claim.token + 1,
        )
        with pytest.raises(OwnershipLostError):
            await r.save_position("P", 7, uuid4(), "Deposited")
