"""PostgreSQL figures against raw asyncpg, both measured in this run on the same server.

Targets: AFTER_BATCH catch-up >= 50% of raw read+decode (pages of 1,000 rows, json.loads of
each payload); AFTER_EACH_EVENT >= 80% of raw single-row UPSERT + commit; live latency from
append to handle p50 <= 5 ms and p99 <= 50 ms; 8 concurrent writers with gap safety >= 50% of
plain (unsafe) inserts.

It starts its own throwaway server (fsync on, as in production) with the test harness. Run with
``nox -s "bench(postgres)"`` or ``python benchmarks/postgres_bench.py [events] [per_event]
[rounds]``; set ``EVENTSOURCE_TEST_POSTGRES_DSN`` to use an existing server instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from uuid import uuid4

import asyncpg
from workload import NoOp, fill_store

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres.server import PostgresServer

PAGE = 1000
WRITERS = 8
COLUMNS = (
    "global_position, event_id, event_type, aggregate_id, aggregate_type, aggregate_version, "
    "occurred_at, recorded_at, metadata, payload"
)


async def fill(dsn: str, count: int) -> None:
    async with PostgreSQLEventStore.from_url(dsn) as store:
        await fill_store(store, count)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE events")
    finally:
        await conn.close()


async def raw_read_decode(dsn: str, count: int) -> float:
    """Pages of 1,000 rows in position order, each payload parsed: the driver's floor."""
    conn = await asyncpg.connect(dsn)
    try:
        query = (
            f"SELECT {COLUMNS} FROM events WHERE global_position > $1 "
            "ORDER BY global_position LIMIT $2"
        )
        loads = json.loads
        began = time.perf_counter()
        position, seen = 0, 0
        while seen < count:
            rows = await conn.fetch(query, position, min(PAGE, count - seen))
            if not rows:
                break
            for row in rows:
                loads(row[9])
            seen += len(rows)
            position = rows[-1][0]
        elapsed = time.perf_counter() - began
    finally:
        await conn.close()
    assert seen == count, (seen, count)
    return count / elapsed


async def raw_upsert_commit(dsn: str, count: int) -> float:
    """One UPSERT per event, each its own committed transaction, on a table of our own."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw (name text PRIMARY KEY, position bigint, "
            "event_id uuid, event_type text, updated_at timestamptz, events bigint)"
        )
        event_id = uuid4()
        began = time.perf_counter()
        for position in range(1, count + 1):
            await conn.execute(
                "INSERT INTO bench_raw VALUES ('raw', $1, $2, 'T', now(), 1) "
                "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, "
                "event_id = EXCLUDED.event_id, event_type = EXCLUDED.event_type, "
                "updated_at = now(), events = bench_raw.events + 1 "
                "WHERE bench_raw.position <= EXCLUDED.position",
                position,
                event_id,
            )
        elapsed = time.perf_counter() - began
        await conn.execute("DROP TABLE bench_raw")
    finally:
        await conn.close()
    return count / elapsed


async def catch_up(dsn: str, strategy: CheckpointStrategy, count: int, batch: int) -> float:
    async with (
        PostgreSQLEventStore.from_url(dsn) as store,
        PostgreSQLCheckpointRepository.from_url(dsn) as repo,
    ):
        name = f"bench-{uuid4()}"
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(batch_size=batch, checkpoint_strategy=strategy)
        sub = await manager.subscribe(NoOp(), config, name=name)
        began = time.perf_counter()
        async with manager:
            await sub.wait_for_position(count)
            elapsed = time.perf_counter() - began
        assert (await repo.get_position(name) or 0) >= count
    return count / elapsed


async def live_latency(dsn: str, samples: int) -> tuple[float, float, float]:
    """Milliseconds from calling append to the handler running, in another pool (as if in
    another process), woken by NOTIFY; one append every 20 ms. Also the median of the append
    alone (its commit waits for fsync), for comparison."""
    handled: dict[object, float] = {}

    class Stamp:
        async def handle(self, event: DomainEvent) -> None:
            handled[event.event_id] = time.perf_counter()

    latencies: list[float] = []
    commits: list[float] = []
    async with (
        PostgreSQLEventStore.from_url(dsn) as store,
        PostgreSQLEventStore.from_url(dsn) as writer,
        PostgreSQLCheckpointRepository.from_url(dsn) as repo,
    ):
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(start_from="end", poll_interval=1.0)
        sub = await manager.subscribe(Stamp(), config, name=f"live-{uuid4()}")
        async with manager:
            await asyncio.sleep(0.5)
            assert store.notifier is not None
            await store.notifier.connected.wait()
            for _ in range(samples):
                events = make_events(1)
                began = time.perf_counter()
                stored = await writer.append(
                    events[0].aggregate_id, events[0].aggregate_type, events, 0
                )
                commits.append((time.perf_counter() - began) * 1000)
                await sub.wait_for_position(stored[-1].global_position)
                latencies.append((handled[events[0].event_id] - began) * 1000)
                await asyncio.sleep(0.02)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return statistics.median(latencies), p99, statistics.median(commits)


async def concurrent_writers(dsn: str, appends: int, safe: bool) -> float:
    """Events/s with ``WRITERS`` tasks appending 1-event streams; ``safe=False`` is a plain
    INSERT with no xid first and no NOTIFY: the rate a gap-unsafe store would reach."""
    async with PostgreSQLEventStore.from_url(dsn, max_size=WRITERS + 2) as store:
        pool = store.pool
        codec = store.codec
        insert = (
            "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
            "aggregate_version, occurred_at, metadata, payload) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::int[], "
            "$6::timestamptz[], $7::jsonb[], $8::jsonb[]) RETURNING global_position, recorded_at"
        )

        async def writer() -> None:
            for _ in range(appends):
                events = make_events(1)
                head = events[0]
                if safe:
                    await store.append(head.aggregate_id, head.aggregate_type, events, 0)
                    continue
                e = codec.encode(head)
                async with pool.acquire() as conn, conn.transaction():
                    version = await conn.fetchval(
                        "SELECT coalesce(max(aggregate_version), 0) FROM events "
                        "WHERE aggregate_type = $1 AND aggregate_id = $2",
                        e.aggregate_type,
                        e.aggregate_id,
                    )
                    assert version == 0
                    await conn.fetch(
                        insert,
                        [e.event_id],
                        [e.event_type],
                        [e.aggregate_id],
                        [e.aggregate_type],
                        [e.aggregate_version],
                        [e.occurred_at],
                        [None],
                        [codec.dumps(e.payload)],
                    )

        began = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        elapsed = time.perf_counter() - began
    return WRITERS * appends / elapsed


async def measure(dsn: str, events: int, per_event: int, rounds: int) -> dict[str, float]:
    """Alternate raw and ours in every round, so a busy machine slows both alike."""
    names = ["raw_read", "batch", "raw_upsert", "each", "unsafe", "safe"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rates["raw_read"].append(await raw_read_decode(dsn, events))
        rates["batch"].append(await catch_up(dsn, CheckpointStrategy.AFTER_BATCH, events, PAGE))
        rates["raw_upsert"].append(await raw_upsert_commit(dsn, per_event))
        rates["each"].append(
            await catch_up(dsn, CheckpointStrategy.AFTER_EACH_EVENT, per_event, 100)
        )
        rates["unsafe"].append(await concurrent_writers(dsn, 250, safe=False))
        rates["safe"].append(await concurrent_writers(dsn, 250, safe=True))
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["p50"], result["p99"], result["commit"] = await live_latency(dsn, 500)
    return result


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    per_event = int(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    external = os.environ.get("EVENTSOURCE_TEST_POSTGRES_DSN")
    server = None if external else PostgresServer.create(durable=True)
    try:
        if server is not None:
            server.psql("CREATE DATABASE eventsource_bench OWNER eventsource")
            dsn = server.dsn("eventsource_bench")
        else:
            assert external is not None
            dsn = external
        asyncio.run(fill(dsn, events))
        rate = asyncio.run(measure(dsn, events, per_event, rounds))
    finally:
        if server is not None:
            server.destroy()
    print(f"PostgreSQL {events:,} events, median of {rounds} alternating rounds (fsync on)")
    print(f"  raw asyncpg read+decode        {rate['raw_read']:12,.0f} events/s")
    print(f"  catch-up AFTER_BATCH (1,000)   {rate['batch']:12,.0f} events/s")
    print(f"  ratio                          {rate['batch'] / rate['raw_read']:12.0%}   (>= 50%)")
    print(f"  raw UPSERT + commit            {rate['raw_upsert']:12,.0f} /s  ({per_event:,} rows)")
    print(f"  catch-up AFTER_EACH_EVENT      {rate['each']:12,.0f} events/s")
    print(f"  ratio                          {rate['each'] / rate['raw_upsert']:12.0%}   (>= 80%)")
    print(f"  live append->handle p50        {rate['p50']:12.2f} ms   (<= 5 ms)")
    print(f"  live append->handle p99        {rate['p99']:12.2f} ms   (<= 50 ms)")
    print(
        f"  (the append alone, p50         {rate['commit']:12.2f} ms: its commit waits for fsync)"
    )
    print(f"  {WRITERS} writers, plain INSERT (unsafe) {rate['unsafe']:9,.0f} events/s")
    print(f"  {WRITERS} writers, gap-safe append     {rate['safe']:9,.0f} events/s")
    print(f"  ratio                          {rate['safe'] / rate['unsafe']:12.0%}   (>= 50%)")


if __name__ == "__main__":
    main()
