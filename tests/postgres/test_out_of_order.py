"""Commits out of position order, rollbacks and an idle transaction: nothing lost, nothing twice.

Some appends hold their transaction open after inserting while others commit later positions;
some write elsewhere first (so their xid is older than their positions); some roll back and
leave holes that never fill. An idle transaction with an xid stays open in another session the
whole time. Live subscriptions (one unfiltered, one filtered) must see every committed event
exactly once, in position order, and catch up once the idle transaction ends.
"""

from __future__ import annotations

import random
from collections import Counter
from uuid import UUID

import anyio
import asyncpg
import pytest

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Deposited, make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

WRITERS = 8
APPENDS_PER_WRITER = 500
EVENTS_PER_APPEND = 5  # 8 * 500 * 5 = 20,000 events attempted


class Rollback(Exception):
    """Raised inside a transaction to roll it back on purpose."""


class Recorder:
    def __init__(self, types: list[type[DomainEvent]] | None = None) -> None:
        self.types = types
        self.ids: list[UUID] = []

    def subscribed_to(self) -> list[type[DomainEvent]] | None:
        return self.types

    async def handle(self, event: DomainEvent) -> None:
        self.ids.append(event.event_id)


async def writer(
    seed: int, store: PostgreSQLEventStore, pool: asyncpg.Pool, schema: str
) -> list[DomainEvent]:
    """Append with a random mix of behaviours; returns the events that committed."""
    rng = random.Random(seed)
    committed: list[DomainEvent] = []
    for _ in range(APPENDS_PER_WRITER):
        events = make_events(EVENTS_PER_APPEND)
        head = events[0]
        kind = rng.random()
        if kind < 0.4:
            await store.append(head.aggregate_id, head.aggregate_type, events, 0)
            committed += events
            continue
        try:
            async with pool.acquire() as conn, conn.transaction():
                if kind < 0.6:  # another write first: the xid predates the positions
                    await conn.execute(f"INSERT INTO {schema}.side (note) VALUES ('before')")
                    await anyio.sleep(rng.random() * 0.003)
                await store.append(
                    head.aggregate_id, head.aggregate_type, events, 0, connection=conn
                )
                await anyio.sleep(rng.random() * 0.01)  # hold the positions while others commit
                if kind > 0.9:
                    raise Rollback
            committed += events
        except Rollback:
            pass
    return committed


@pytest.mark.anyio
@pytest.mark.timeout(240)
async def test_out_of_order_commits_are_delivered_exactly_once(pg_dsn: str) -> None:
    schema = "ooo"
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=WRITERS + 8)
    idle = await asyncpg.connect(pg_dsn)
    try:
        store = PostgreSQLEventStore(pool, schema=schema)
        repo = PostgreSQLCheckpointRepository(pool, schema=schema)
        await store.initialize()
        await repo.initialize()
        await pool.execute(f"CREATE TABLE {schema}.side (note text)")

        everything, deposits = Recorder(), Recorder([Deposited])
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            batch_size=500, poll_interval=0.2, checkpoint_strategy="after_batch"
        )
        sub_all = await manager.subscribe(everything, config, name="All")
        await manager.subscribe(deposits, config, name="Deposits")

        async with manager:
            # an idle transaction with an xid, open while all the writers run
            await idle.execute("BEGIN")
            idle_xid = int(await idle.fetchval("SELECT pg_current_xact_id()::text"))
            await idle.execute(f"INSERT INTO {schema}.side (note) VALUES ('idle')")

            results: list[list[DomainEvent]] = [[] for _ in range(WRITERS)]

            async def run(i: int) -> None:
                results[i] = await writer(i, store, pool, schema)

            async with anyio.create_task_group() as tg:
                for i in range(WRITERS):
                    tg.start_soon(run, i)
            committed = [e for r in results for e in r]
            top = await pool.fetchval(f"SELECT max(global_position) FROM {schema}.events")

            # rollbacks made holes while the idle transaction was open: readers wait there
            await anyio.sleep(0.5)
            held = store.held_back()
            assert held is not None
            assert idle_xid in held.blocking_xids
            assert sub_all.position < top

            await idle.execute("COMMIT")
            with anyio.fail_after(60):
                await sub_all.wait_for_position(top)
                while len(deposits.ids) < sum(isinstance(e, Deposited) for e in committed):
                    await anyio.sleep(0.05)
            assert store.held_back() is None

        expected = {e.event_id for e in committed}
        assert len(committed) >= 15_000  # about 10% of appends roll back
        assert Counter(everything.ids).most_common(1)[0][1] == 1
        assert set(everything.ids) == expected
        deposit_ids = {e.event_id for e in committed if isinstance(e, Deposited)}
        assert Counter(deposits.ids).most_common(1)[0][1] == 1
        assert set(deposits.ids) == deposit_ids

        # the subscription saw them in position order, with rolled-back positions missing
        rows = await pool.fetch(f"SELECT event_id FROM {schema}.events ORDER BY global_position")
        assert [r[0] for r in rows] == everything.ids
        assert top > len(committed)  # rollbacks really did leave holes
        assert await repo.get_position("All") == top
    finally:
        await idle.close()
        await pool.close()
