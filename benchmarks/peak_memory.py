"""Peak memory of a catch-up: 1M events may cost at most 10% more than 100k.

Each catch-up runs in a fresh child process, which reports its peak resident set size, so the
figures are not polluted by filling the store. Usage::

    python benchmarks/peak_memory.py sqlite:///tmp/bench.db [small] [large]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import anyio
from workload import NoOp, fill_store

from eventsource_core import open_checkpoint_repository, open_event_store
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)


async def fill(url: str, total: int) -> None:
    async with open_event_store(url) as store:
        await fill_store(store, total)


async def catch_up(url: str, count: int) -> None:
    """Child: catch up over the first ``count`` events, print peak RSS (KiB) and the rate."""
    async with open_event_store(url) as store, open_checkpoint_repository(url) as repo:
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            start_from="beginning",
            batch_size=1000,
            checkpoint_strategy=CheckpointStrategy.AFTER_BATCH,
        )
        sub = await manager.subscribe(NoOp(), config, name=f"peak-{count}")
        began = time.perf_counter()
        async with manager:
            await sub.wait_for_position(count)
        rate = count / (time.perf_counter() - began)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, f"{rate:.0f}")


def measure(url: str, count: int) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def main(url: str, small: int, large: int) -> None:
    anyio.run(fill, url, large)
    small_rss, small_rate = measure(url, small)
    large_rss, large_rate = measure(url, large)
    growth = large_rss / small_rss - 1
    verdict = "ok" if growth <= 0.10 else "ABOVE TARGET"
    print(
        f"peak RSS catching up {small:,} events: {small_rss / 1024:.1f} MiB ({small_rate:,.0f}/s)"
    )
    print(
        f"peak RSS catching up {large:,} events: {large_rss / 1024:.1f} MiB ({large_rate:,.0f}/s)"
    )
    print(f"growth: {growth:+.1%} (target <= +10%: {verdict})")


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        anyio.run(catch_up, sys.argv[2], int(sys.argv[3]))
    else:
        small = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
        large = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
        main(sys.argv[1], small, large)
