"""Child processes for the cross-process and crash tests (run as scripts, never imported by
pytest's collection). Each writes what it did to a file with one ``os.write`` per line, so a
SIGKILL loses nothing it has already reported.

    python children.py write URL COUNT PER_APPEND
    python children.py follow URL NAME LOG TOTAL
    python children.py crash URL NAME LOG TOTAL MODE BATCH
"""

from __future__ import annotations

import os
import sys
import time
from uuid import uuid4

import anyio

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Deposited, Opened, make_events
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore


class LineLog:
    """Appends lines with O_APPEND writes: durable against SIGKILL as soon as written."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, text: str) -> None:
        os.write(self.fd, f"{text}\n".encode())


class Follower:
    """Records each event it handles, in handling order."""

    def __init__(self, log: LineLog) -> None:
        self.log = log

    def subscribed_to(self) -> None:
        return None

    async def handle(self, event: DomainEvent) -> None:
        self.log.line(str(event.event_id))


class Ledger(Follower):
    """Exactly-once: balances and a set of seen event ids in the same transaction as the
    checkpoint. The log line is written outside the transaction, so it counts attempts."""

    async def handle_in_transaction(self, event: DomainEvent, tx: object) -> None:
        self.log.line(str(event.event_id))
        db = tx.connection  # type: ignore[attr-defined]
        await db.execute_fetchall("INSERT INTO seen (event_id) VALUES (?)", (str(event.event_id),))
        account = str(event.aggregate_id)
        if isinstance(event, Opened):
            await db.execute_fetchall("INSERT INTO balances VALUES (?, 0)", (account,))
        else:
            delta = event.amount if isinstance(event, Deposited) else -event.amount  # type: ignore[attr-defined]
            await db.execute_fetchall(
                "UPDATE balances SET balance = balance + ? WHERE account = ?", (delta, account)
            )


async def write(url: str, count: int, per_append: int) -> None:
    """Append ``count`` events in small appends to fresh streams, pausing now and then."""
    async with SQLiteEventStore.open(url) as store:
        done = 0
        while done < count:
            events = make_events(min(per_append, count - done), uuid4())
            await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
            done += len(events)
            await anyio.sleep(0.002)


async def follow(url: str, name: str, log_path: str, total: int) -> None:
    """Subscribe with polling only (no bus: the writer is another process) until ``total``."""
    log = LineLog(log_path)
    async with (
        SQLiteEventStore.open(url) as store,
        SQLiteCheckpointRepository.open(url) as repo,
    ):
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(poll_interval=0.02, batch_size=37)
        sub = await manager.subscribe(Follower(log), config, name=name)
        async with manager:
            with anyio.fail_after(60):
                await sub.wait_for_position(total)


async def crash(url: str, name: str, log_path: str, total: int, mode: str, batch: int) -> None:
    log = LineLog(log_path)
    async with (
        SQLiteEventStore.open(url) as store,
        SQLiteCheckpointRepository.open(url) as repo,
    ):
        log.line(f"start {await repo.get_position(name) or 0}")
        if mode == "exactly_once":
            projection: Follower = Ledger(log)
            strategy = CheckpointStrategy.AFTER_BATCH
        else:
            projection = Follower(log)
            strategy = CheckpointStrategy(mode)
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            poll_interval=0.05, batch_size=batch, checkpoint_strategy=strategy
        )
        sub = await manager.subscribe(projection, config, name=name)
        async with manager:
            with anyio.fail_after(300):
                await sub.wait_for_position(total)
        if sub.error is not None:
            raise sub.error
    log.line("done")


def main(argv: list[str]) -> None:
    command, url, *rest = argv
    began = time.monotonic()
    if command == "write":
        anyio.run(write, url, int(rest[0]), int(rest[1]), backend="asyncio")
    elif command == "follow":
        anyio.run(follow, url, rest[0], rest[1], int(rest[2]), backend="asyncio")
    elif command == "crash":
        name, log_path, total, mode, batch = rest
        anyio.run(crash, url, name, log_path, int(total), mode, int(batch), backend="asyncio")
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(f"{command} finished in {time.monotonic() - began:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
