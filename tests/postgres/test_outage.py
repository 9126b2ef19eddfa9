"""PostgreSQL stops mid-run and comes back on the same port: nothing is lost, the outage is logged.

A writer keeps appending (retrying while the server is down); two subscriptions run in this
process with claims on: one plain (``handle``) and one exactly-once (``handle_in_transaction``).
The server is stopped with ``immediate`` (a crash as far as clients can tell), kept down longer
than the claim lease, and started again.

The throwaway server runs with ``synchronous_commit = off`` for speed; with that, a crash
forgets commits it already acknowledged (and hands their positions out again). The backend
assumes acknowledged commits are durable, so this test's database turns it back on.
"""

from __future__ import annotations

import logging
from collections import Counter
from urllib.parse import urlsplit
from uuid import UUID

import anyio
import asyncpg
import pytest

from eventsource_core import ConcurrencyError, DomainEvent
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from eventsource_core.subscriptions.subscription import Subscription
from eventsource_core.testing import make_events
from eventsource_core.transactions import CheckpointTransaction
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

pytestmark = pytest.mark.anyio

LEASE = 2.0
DOWN_SECONDS = 3 * LEASE  # longer than the lease: the claims are lost and taken again
APPENDS = 150
PER_APPEND = 4


class Plain:
    def __init__(self) -> None:
        self.seen: list[UUID] = []

    async def handle(self, event: DomainEvent) -> None:
        self.seen.append(event.event_id)


class ExactlyOnce:
    async def handle_in_transaction(self, event: DomainEvent, tx: CheckpointTransaction) -> None:
        await tx.connection.execute("INSERT INTO read_model (event_id) VALUES ($1)", event.event_id)


async def _writer(store: PostgreSQLEventStore, written: list[UUID], done: anyio.Event) -> None:
    """Append every batch exactly once, retrying through the outage."""
    for _ in range(APPENDS):
        events = make_events(PER_APPEND)
        head = events[0]
        while True:
            try:
                await store.append(head.aggregate_id, head.aggregate_type, events, 0)
            except ConcurrencyError:
                pass  # the first attempt committed before its connection dropped
            except Exception:  # the server is down: try again shortly
                await anyio.sleep(0.1)
                continue
            break
        written.extend(e.event_id for e in events)
        await anyio.sleep(0.02)
    done.set()


@pytest.mark.timeout(300)
async def test_a_server_restart_mid_run_loses_nothing_and_is_logged(
    pg, pg_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = pg.require_server()
    database = urlsplit(pg_dsn).path.lstrip("/")
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"ALTER DATABASE {database} SET synchronous_commit = on")
    finally:
        await admin.close()
    monkeypatch.setattr(Subscription, "RETRY_MAX_DELAY", 1.0)
    caplog.set_level(logging.INFO)
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=8, timeout=5)
    writer_pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2, timeout=5)
    assert await writer_pool.fetchval("SHOW synchronous_commit") == "on"
    plain = Plain()
    written: list[UUID] = []
    try:
        async with (
            PostgreSQLEventStore(pool) as store,
            PostgreSQLEventStore(writer_pool) as writer_store,
            PostgreSQLCheckpointRepository(pool, lease_seconds=LEASE) as repo,
        ):
            await pool.execute("CREATE TABLE read_model (event_id uuid NOT NULL)")
            manager = SubscriptionManager(store, None, repo)
            each = SubscriptionConfig(
                poll_interval=0.05,
                batch_size=20,
                checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT,
            )
            plain_sub = await manager.subscribe(plain, each, name="Plain")
            exact_sub = await manager.subscribe(
                ExactlyOnce(), SubscriptionConfig(poll_interval=0.05, batch_size=20), name="Exact"
            )
            done = anyio.Event()
            async with manager, anyio.create_task_group() as tg:
                tg.start_soon(_writer, writer_store, written, done)
                with anyio.fail_after(60):
                    while len(plain.seen) < 100 or exact_sub.position == 0:
                        await anyio.sleep(0.05)
                await anyio.to_thread.run_sync(server.stop, "immediate")
                await anyio.sleep(DOWN_SECONDS)
                assert plain_sub.state is not SubscriptionState.FAILED
                assert exact_sub.state is not SubscriptionState.FAILED
                await anyio.to_thread.run_sync(server.start)
                with anyio.fail_after(120):
                    await done.wait()
                    while True:
                        handled = await pool.fetchval("SELECT count(*) FROM read_model")
                        if handled >= len(written) and set(plain.seen) >= set(written):
                            break
                        await anyio.sleep(0.1)
                assert manager.errors == {}
            read_model = [r[0] for r in await pool.fetch("SELECT event_id FROM read_model")]
            positions = {
                c.projection_name: c.global_position for c in await repo.get_all_checkpoints()
            }
            last = await store.current_position()
    finally:
        if not server.is_running():
            server.start()
        await writer_pool.close()
        await pool.close()

    assert len(written) == APPENDS * PER_APPEND
    assert set(plain.seen) == set(written)  # every event, none lost
    assert max(Counter(plain.seen).values()) <= 2  # at most the unsaved one again
    assert sorted(read_model) == sorted(written)  # exactly once, through the outage
    assert positions == {"Plain": last, "Exact": last}
    messages = [r.getMessage() for r in caplog.records]
    outage = [m for m in messages if "cannot reach" in m or "unreachable" in m]
    assert outage, "the outage was not logged"
    assert any(
        r.levelno >= logging.WARNING for r in caplog.records if "cannot reach" in r.getMessage()
    )
    assert any("lost the claim" in m for m in messages)  # down longer than the lease
    assert any("claimed 'Exact'" in m for m in messages[messages.index(outage[0]) :])
