"""NOTIFY wakes readers in other processes; a lost LISTEN connection comes back on its own."""

from __future__ import annotations

import logging

import anyio
import asyncpg
import pytest

from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore


async def append(store: PostgreSQLEventStore, count: int = 1) -> int:
    events = make_events(count)
    stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    return stored[-1].global_position


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1

    async def after(self, count: int) -> None:
        with anyio.fail_after(5):
            while self.count <= count:
                await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_an_append_through_another_pool_wakes_listeners(pg_dsn: str) -> None:
    async with (
        PostgreSQLEventStore.from_url(pg_dsn) as reader,
        PostgreSQLEventStore.from_url(pg_dsn) as writer,
    ):
        wakes = Wakes()
        remove = reader.add_listener(wakes)
        assert reader.notifier is not None
        with anyio.fail_after(5):
            await reader.notifier.connected.wait()
        before = wakes.count
        await append(writer)
        await wakes.after(before)
        remove()


@pytest.mark.anyio
async def test_a_killed_listen_connection_reconnects_and_logs(pg_dsn: str, caplog) -> None:
    caplog.set_level(logging.WARNING, "eventsource_postgres.notify")
    async with (
        PostgreSQLEventStore.from_url(pg_dsn) as reader,
        PostgreSQLEventStore.from_url(pg_dsn) as writer,
    ):
        wakes = Wakes()
        reader.add_listener(wakes)
        notifier = reader.notifier
        assert notifier is not None
        with anyio.fail_after(5):
            await notifier.connected.wait()
        admin = await asyncpg.connect(pg_dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed == 1
        with anyio.fail_after(10):
            while notifier.reconnects == 0 or not notifier.connected.is_set():
                await anyio.sleep(0.02)
        assert any("LISTEN" in r.getMessage() for r in caplog.records)
        before = wakes.count
        await append(writer)
        await wakes.after(before)


@pytest.mark.anyio
async def test_a_subscription_goes_live_through_notify_not_polling(pg_dsn: str) -> None:
    handled: list[int] = []

    class Projection:
        async def handle(self, event) -> None:
            handled.append(event.aggregate_version)

    async with (
        PostgreSQLEventStore.from_url(pg_dsn) as store,
        PostgreSQLEventStore.from_url(pg_dsn) as other_process,
        PostgreSQLCheckpointRepository.from_url(pg_dsn) as repo,
    ):
        manager = SubscriptionManager(store, None, repo)
        sub = await manager.subscribe(Projection(), SubscriptionConfig(poll_interval=60.0))
        async with manager:
            with anyio.fail_after(10):
                await sub.wait_for_position(0)
                assert store.notifier is not None
                await store.notifier.connected.wait()
                position = await append(other_process, 3)
                await sub.wait_for_position(position)
        assert handled == [1, 2, 3]
