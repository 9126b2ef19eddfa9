"""A worker process for the crash test: runs one subscription until it has handled ``LAST``.

Usage: ``python crash.py DSN NAME MODE BATCH LOG LAST RUN``

MODE is ``each`` (AFTER_EACH_EVENT), ``batch`` (AFTER_BATCH) or ``exact`` (exactly-once
balances, written in the checkpoint's transaction). ``each`` and ``batch`` append one line per
handled event to LOG with a single ``os.write``, so a SIGKILL loses no line already written.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Deposited, Withdrawn
from eventsource_core.transactions import CheckpointTransaction
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

LEASE = 1.0  # a restarted worker waits out the killed one's lease
HANDLER_SECONDS = 0.0005  # so kills land inside batches, not only between them

APPLY = """
    INSERT INTO balances (aggregate_id, balance, applied) VALUES ($1, $2, 1)
    ON CONFLICT (aggregate_id) DO UPDATE
       SET balance = balances.balance + EXCLUDED.balance, applied = balances.applied + 1"""


def delta(event: DomainEvent) -> int:
    if isinstance(event, Deposited):
        return int(event.amount)
    if isinstance(event, Withdrawn):
        return -int(event.amount)
    return 0


class Logged:
    def __init__(self, path: str, run: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.run = run

    async def handle(self, event: DomainEvent) -> None:
        os.write(self.fd, f"{self.run} {event.event_id}\n".encode())
        await asyncio.sleep(HANDLER_SECONDS)  # like a projection doing I/O


class Balances:
    async def handle_in_transaction(self, event: DomainEvent, tx: CheckpointTransaction) -> None:
        await tx.connection.execute(APPLY, event.aggregate_id, delta(event))


async def main(dsn: str, name: str, mode: str, batch: int, log: str, last: int, run: str) -> int:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    async with (
        PostgreSQLEventStore(pool) as store,
        PostgreSQLCheckpointRepository(pool, lease_seconds=LEASE) as repo,
    ):
        strategy = (
            CheckpointStrategy.AFTER_EACH_EVENT
            if mode == "each"
            else CheckpointStrategy.AFTER_BATCH
        )
        config = SubscriptionConfig(
            batch_size=batch, poll_interval=0.05, checkpoint_strategy=strategy
        )
        projection = Balances() if mode == "exact" else Logged(log, run)
        manager = SubscriptionManager(store, None, repo)
        sub = await manager.subscribe(projection, config, name=name)
        async with manager:
            print("started", flush=True)
            await sub.wait_for_position(last)
        errors = manager.errors
    await pool.close()
    if errors:
        print(f"failed: {errors}", flush=True)
        return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    dsn, name, mode, batch, log, last, run = sys.argv[1:8]
    sys.exit(asyncio.run(main(dsn, name, mode, int(batch), log, int(last), run)))
