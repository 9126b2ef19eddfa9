"""Catch-up throughput of the memory backend with a no-op projection (target: >= 500k events/s).

Run with ``nox -s "bench(memory)"`` or ``python benchmarks/memory_bench.py [events]``.
"""

from __future__ import annotations

import sys
import time

import anyio
from workload import NoOp, fill_store

from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore


async def catch_up(store: InMemoryEventStore, strategy: CheckpointStrategy, count: int) -> float:
    repo = InMemoryCheckpointRepository()
    manager = SubscriptionManager(store, None, repo)
    config = SubscriptionConfig(batch_size=1000, checkpoint_strategy=strategy)
    sub = await manager.subscribe(NoOp(), config, name="bench")
    began = time.perf_counter()
    async with manager:
        await sub.wait_for_position(count)
    elapsed = time.perf_counter() - began
    assert await repo.get_position("bench") == count
    return count / elapsed


async def raw_loop(store: InMemoryEventStore, count: int) -> float:
    """The floor: page through the log and await a no-op per event, nothing else."""
    handler = NoOp().handle
    began = time.perf_counter()
    position = 0
    while page := await store.read_page(position, 1000):
        for stored in page:
            await handler(stored.event)
        position = page[-1].global_position
    return count / (time.perf_counter() - began)


async def main(count: int) -> None:
    store = InMemoryEventStore()
    await fill_store(store, count)
    raw = await raw_loop(store, count)
    print(f"memory: {count} events; bare read+await loop {raw:,.0f} events/s")
    for strategy in CheckpointStrategy:
        rate = await catch_up(store, strategy, count)
        verdict = "ok" if rate >= 500_000 else "BELOW TARGET"
        print(
            f"  catch-up {strategy.value:>16}: {rate:>11,.0f} events/s "
            f"({rate / raw:.0%} of the bare loop; target 500k/s: {verdict})"
        )


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
