"""Holes in the position sequence: held while they may fill, passed once they cannot."""

from __future__ import annotations

import asyncpg
import pytest

from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLEventStore
from eventsource_postgres.gaps import GapTracker, Snapshot


def _events(count: int = 1):
    events = make_events(count)
    return events[0].aggregate_id, events[0].aggregate_type, events


async def positions(store: PostgreSQLEventStore, after: int = 0, types=None) -> list[int]:
    return [s.global_position for s in await store.read_page(after, 100, types)]


@pytest.mark.anyio
async def test_an_uncommitted_earlier_position_holds_readers_back(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    first = _events()
    async with pg_pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        await store.append(*first, 0, connection=slow)  # takes position 1, not committed
        await store.append(*_events(2), 0)  # positions 2 and 3, committed
        assert await positions(store) == []
        assert await positions(store, types=[first[2][0].event_type]) == []
        assert await store.current_position() == 0
        held = store.held_back()
        assert held is not None and held.position == 1
        await tx.commit()
    assert await positions(store) == [1, 2, 3]
    assert await store.current_position() == 3
    assert store.held_back() is None


@pytest.mark.anyio
async def test_a_rolled_back_position_is_passed_without_waiting(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    async with pg_pool.acquire() as doomed:
        tx = doomed.transaction()
        await tx.start()
        await store.append(*_events(), 0, connection=doomed)
        await store.append(*_events(), 0)
        await tx.rollback()
    assert await positions(store) == [2]
    assert await store.current_position() == 2


@pytest.mark.anyio
async def test_a_transaction_that_wrote_elsewhere_first_is_waited_for(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    await store.initialize()
    await pg_pool.execute(f"CREATE TABLE {pg_schema}.other (x int)")
    async with pg_pool.acquire() as early:
        tx = early.transaction()
        await tx.start()
        await early.execute(f"INSERT INTO {pg_schema}.other VALUES (1)")
        await store.append(*_events(), 0)  # position 1, committed
        await store.append(*_events(), 0, connection=early)  # position 2, open
        await store.append(*_events(), 0)  # position 3, committed
        assert await positions(store) == [1]
        await tx.commit()
    assert await positions(store) == [1, 2, 3]


@pytest.mark.anyio
async def test_holes_seen_during_an_idle_transaction_wait_for_it(pg_dsn) -> None:
    """The documented limit: an unrelated open transaction with an xid blocks a new hole."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    idle = await asyncpg.connect(pg_dsn)
    try:
        store = PostgreSQLEventStore(pool)
        await store.initialize()
        await idle.execute("BEGIN")
        idle_xid = int(await idle.fetchval("SELECT pg_current_xact_id()::text"))
        async with pool.acquire() as doomed:
            tx = doomed.transaction()
            await tx.start()
            await store.append(*_events(), 0, connection=doomed)
            await store.append(*_events(), 0)
            await tx.rollback()
        assert await positions(store) == []
        held = store.held_back()
        assert held is not None
        assert held.position == 1
        assert held.blocking_xids == (idle_xid,)
        [blocking] = await store.blocking_transactions()
        assert blocking.xid == idle_xid % 2**32
        assert blocking.state == "idle in transaction"
        assert blocking.seconds is not None and blocking.seconds > 0
        await idle.execute("ROLLBACK")
        assert await positions(store) == [2]
        assert await store.blocking_transactions() == []
    finally:
        await idle.close()
        await pool.close()


@pytest.mark.anyio
async def test_a_reader_resuming_late_does_not_scan_from_the_start(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    for _ in range(5):
        await store.append(*_events(2), 0)
    assert await positions(store, after=6) == [7, 8, 9, 10]
    assert store._gaps.settled_until(6) == 10
    assert store._gaps.settled_until(0) == 0


def test_evidence_needs_a_snapshot_that_knows_the_upper_xid() -> None:
    tracker = GapTracker()
    seen = Snapshot(100, 105, frozenset({100, 103}))
    assert tracker.decide(0, 10, [(4, 5)], seen) == (3, [(4, 5)])
    tracker.record([(4, 5)], seen, upper=110)
    # too early: the snapshot cannot tell about ids assigned before 110
    assert tracker.decide(3, 10, [(4, 5)], Snapshot(100, 109, frozenset({100}))) == (3, [])
    # 107 got its id before the hole was seen and is still running
    assert tracker.decide(3, 10, [(4, 5)], Snapshot(100, 111, frozenset({107}))) == (3, [])
    assert tracker.held is not None and tracker.held.blocking_xids == (107,)
    # 112 started later: it cannot own positions 4 and 5
    assert tracker.decide(3, 10, [(4, 5)], Snapshot(112, 113, frozenset({112}))) == (10, [])
    assert tracker.settled_until(0) == 10
    assert tracker.held is None


def test_settled_ranges_merge() -> None:
    tracker = GapTracker()
    tracker.extend(0, 10)
    tracker.extend(20, 30)
    assert tracker.settled_until(5) == 10
    assert tracker.settled_until(15) == 15
    tracker.extend(10, 25)
    assert tracker.settled_until(0) == 30


def test_snapshot_parses_the_text_form() -> None:
    assert Snapshot.parse("10:20:12,15") == Snapshot(10, 20, frozenset({12, 15}))
    assert Snapshot.parse("10:10:") == Snapshot(10, 10, frozenset())


@pytest.mark.anyio
async def test_a_short_page_read_ahead_is_not_served_later(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    for _ in range(3):
        await store.append(*_events(5), 0)  # positions 1..15
    first = await store.read_page(0, 10)
    assert [s.global_position for s in first] == list(range(1, 11))
    ahead = store._ahead._early[(10, 10, None)]
    assert [s.global_position for s in await ahead] == list(range(11, 16))  # short
    await store.append(*_events(5), 0)  # positions 16..20
    second = await store.read_page(10, 10)
    assert [s.global_position for s in second] == list(range(11, 21))
    await store.close()


@pytest.mark.anyio
async def test_paging_with_read_ahead_returns_every_event_once(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    for _ in range(7):
        await store.append(*_events(5), 0)
    seen = [s.global_position async for s in store.read_all(0, limit=4)]
    assert seen == list(range(1, 36))
    typed = [s.global_position async for s in store.read_all(0, 3, ["eventsource.testing.Opened"])]
    assert typed == [1, 6, 11, 16, 21, 26, 31]
    await store.close()
