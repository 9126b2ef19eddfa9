"""SQLite catch-up against raw aiosqlite, both measured in this run on the same file.

Targets: AFTER_BATCH catch-up >= 50% of raw read+decode (pages of 1,000 rows, json.loads of
each payload); AFTER_EACH_EVENT catch-up >= 80% of raw single-row UPSERT + commit.

Run with ``nox -s "bench(sqlite)"`` or
``python benchmarks/sqlite_bench.py [events] [per_event_events] [rounds]``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import aiosqlite
from workload import NoOp, fill_store

from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

PAGE = 1000


async def fill(url: str, count: int) -> None:
    async with SQLiteEventStore.open(url) as store:
        await fill_store(store, count)


async def raw_read_decode(path: str, count: int) -> float:
    """Pages of 1,000 rows in position order, each payload parsed: the driver's floor."""
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute_fetchall("PRAGMA synchronous=NORMAL")
        began = time.perf_counter()
        position, seen = 0, 0
        loads = json.loads
        while True:
            rows = await db.execute_fetchall(
                "SELECT global_position, event_id, event_type, aggregate_id, aggregate_type, "
                "aggregate_version, occurred_at, recorded_at, metadata, payload FROM events "
                "WHERE global_position > ? ORDER BY global_position LIMIT ?",
                (position, PAGE),
            )
            if not rows:
                break
            for row in rows:
                loads(row[9])
            seen += len(rows)
            position = rows[-1][0]
        elapsed = time.perf_counter() - began
    assert seen == count, (seen, count)
    return count / elapsed


async def raw_upsert_commit(path: str, count: int) -> float:
    """One UPSERT per event, each its own committed transaction, on a table of our own."""
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute_fetchall("PRAGMA synchronous=NORMAL")
        await db.execute_fetchall(
            "CREATE TABLE bench_raw (name TEXT PRIMARY KEY, position INTEGER, "
            "event_id TEXT, event_type TEXT, updated_at TEXT, events INTEGER)"
        )
        event_id = str(uuid4())
        began = time.perf_counter()
        for position in range(1, count + 1):
            await db.execute_fetchall(
                "INSERT INTO bench_raw VALUES ('raw', ?, ?, 'T', ?, 1) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
                "event_id = excluded.event_id, event_type = excluded.event_type, "
                "updated_at = excluded.updated_at, events = events + 1 "
                "WHERE excluded.position >= position",
                (position, event_id, "2026-01-01T00:00:00+00:00"),
            )
        elapsed = time.perf_counter() - began
        # Dropped, so the next round starts from an empty row again: positions only rise, and
        # a round that re-saved old positions would measure UPSERTs that change nothing.
        await db.execute_fetchall("DROP TABLE bench_raw")
    return count / elapsed


async def catch_up(url: str, strategy: CheckpointStrategy, count: int, batch: int) -> float:
    async with (
        SQLiteEventStore.open(url) as store,
        SQLiteCheckpointRepository.open(url) as repo,
    ):
        name = f"bench-{uuid4()}"
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            batch_size=batch, checkpoint_strategy=strategy, poll_interval=0.01
        )
        sub = await manager.subscribe(NoOp(), config, name=name)
        # Stop after exactly ``count`` events: a store with more is read only that far.
        began = time.perf_counter()
        async with manager:
            await sub.wait_for_position(count)
            elapsed = time.perf_counter() - began
        assert (await repo.get_position(name) or 0) >= count
    return count / elapsed


async def measure(path: str, events: int, per_event: int, rounds: int) -> dict[str, float]:
    """Alternate raw and ours in every round, so a busy machine slows both alike.

    Ratios are taken within each round, then the median across rounds is reported.
    """
    url = f"sqlite:///{path}"
    rates: dict[str, list[float]] = {
        "raw_read": [],
        "batch": [],
        "raw_upsert": [],
        "each": [],
        "each_1000": [],
    }
    for _ in range(rounds):
        rates["raw_read"].append(await raw_read_decode(path, events))
        rates["batch"].append(await catch_up(url, CheckpointStrategy.AFTER_BATCH, events, PAGE))
        rates["raw_upsert"].append(await raw_upsert_commit(path, per_event))
        rates["each"].append(
            await catch_up(url, CheckpointStrategy.AFTER_EACH_EVENT, per_event, 100)
        )
        rates["each_1000"].append(
            await catch_up(url, CheckpointStrategy.AFTER_EACH_EVENT, per_event, PAGE)
        )
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["batch_ratio"] = statistics.median(
        b / r for b, r in zip(rates["batch"], rates["raw_read"], strict=True)
    )
    for each in ("each", "each_1000"):
        result[f"{each}_ratio"] = statistics.median(
            e / r for e, r in zip(rates[each], rates["raw_upsert"], strict=True)
        )
    return result


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    per_event = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        asyncio.run(fill(f"sqlite:///{path}", events))
        rate = asyncio.run(measure(path, events, per_event, rounds))
    print(f"SQLite, {events:,} events; medians of {rounds} rounds, raw and ours alternating")
    print(f"  raw aiosqlite read+decode      {rate['raw_read']:12,.0f} events/s")
    print(f"  catch-up AFTER_BATCH (1,000)   {rate['batch']:12,.0f} events/s")
    print(f"  ratio                          {rate['batch_ratio']:12.0%}   (target >= 50%)")
    print(f"  raw UPSERT + commit            {rate['raw_upsert']:12,.0f} /s ({per_event:,} rows)")
    print(f"  catch-up AFTER_EACH_EVENT      {rate['each']:12,.0f} events/s ({per_event:,} events)")
    print(f"  ratio, batch_size=100 (default){rate['each_ratio']:12.0%}   (target >= 80%)")
    print(f"  ratio, batch_size=1,000        {rate['each_1000_ratio']:12.0%}   (fewer page stalls)")


if __name__ == "__main__":
    main()
