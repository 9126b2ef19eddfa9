"""A worker process for the ownership and outage tests: runs subscriptions until killed.

Usage: ``python -m tests.postgres.workers.owner DSN LEASE_SECONDS NAME [NAME ...]``

Every handled event is recorded in the ``handled`` table (committed per event) with this
process's pid and the claim token it handled under, so the test can check from outside that no
two processes ever handled one subscription at the same time. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import asyncpg

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Deposited  # noqa: F401  (registers the test events)
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

RECORD = "INSERT INTO handled (subscription, event_id, pid, token) VALUES ($1, $2, $3, $4)"


class Recorder:
    """Records each event it handles, with who handled it and under which claim token."""

    def __init__(self, name: str, pool: asyncpg.Pool, repo: PostgreSQLCheckpointRepository):
        self.name, self.pool, self.repo = name, pool, repo

    async def handle(self, event: DomainEvent) -> None:
        assert self.repo.claims is not None
        token = self.repo.claims.tokens.get(self.name)
        await self.pool.execute(RECORD, self.name, event.event_id, os.getpid(), token)


async def main(dsn: str, lease: float, names: list[str]) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        PostgreSQLEventStore(pool) as store,
        PostgreSQLCheckpointRepository(pool, lease_seconds=lease) as repo,
    ):
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            poll_interval=0.05,
            batch_size=50,
            checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT,
        )
        for name in names:
            await manager.subscribe(Recorder(name, pool, repo), config, name=name)
        async with manager:
            print("ready", flush=True)
            await stop.wait()
        if manager.errors:
            print(f"failed: {manager.errors}", file=sys.stderr, flush=True)
    await pool.close()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:]))
