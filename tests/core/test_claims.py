"""How the subscription runner uses a repository that grants one owner per name."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from eventsource_core.subscriptions import (
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from eventsource_core.testing import make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class _Claim:
    def __init__(self, name: str, token: int) -> None:
        self.name, self.token = name, token
        self.lost = anyio.Event()

    async def wait_lost(self) -> None:
        await self.lost.wait()


class ClaimingRepository(InMemoryCheckpointRepository):
    """In-process ownership: one lock per name, so two managers in one process take turns."""

    def __init__(self, store: InMemoryEventStore) -> None:
        super().__init__(event_store=store)
        self.locks: dict[str, anyio.Lock] = {}
        self.tokens = 0
        self.current: _Claim | None = None

    @asynccontextmanager
    async def claim(self, name: str) -> AsyncIterator[_Claim]:
        async with self.locks.setdefault(name, anyio.Lock()):
            self.tokens += 1
            self.current = _Claim(name, self.tokens)
            yield self.current


class Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    async def handle(self, event) -> None:
        self.seen.append(event.aggregate_version)


async def test_standby_takes_over_from_the_checkpoint_when_the_owner_stops():
    store = InMemoryEventStore()
    repo = ClaimingRepository(store)
    events = make_events(6)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events[:3], 0)
    config = SubscriptionConfig(poll_interval=0.02)
    first, second = Recorder(), Recorder()
    owner, standby = SubscriptionManager(store, None, repo), SubscriptionManager(store, None, repo)
    owned = await owner.subscribe(first, config, name="P")
    waiting = await standby.subscribe(second, config, name="P")
    with anyio.fail_after(10):
        await owner.start()
        await owned.wait_for_position(3)
        await standby.start()
        await anyio.sleep(0.05)
        assert waiting.state is SubscriptionState.STANDBY
        assert second.seen == []
        await owner.stop()
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events[3:], 3)
        await waiting.wait_for_position(6)
        await standby.stop()
    assert first.seen == [1, 2, 3]
    assert second.seen == [4, 5, 6]
    assert repo.tokens == 2


async def test_losing_the_claim_stops_handling_until_it_is_reclaimed():
    store = InMemoryEventStore()
    repo = ClaimingRepository(store)
    events = make_events(4)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events[:2], 0)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(poll_interval=0.02), name="P")
    with anyio.fail_after(10):
        async with manager:
            await sub.wait_for_position(2)
            assert repo.current is not None
            repo.current.lost.set()
            while repo.tokens < 2:  # the runner stands by and claims the name again
                await anyio.sleep(0.01)
            await store.append(events[0].aggregate_id, events[0].aggregate_type, events[2:], 2)
            await sub.wait_for_position(4)
    assert projection.seen == [1, 2, 3, 4]
    assert await repo.get_position("P") == 4


async def test_stopping_a_standby_returns_without_waiting_for_the_claim():
    store = InMemoryEventStore()
    repo = ClaimingRepository(store)
    holder = repo.locks.setdefault("P", anyio.Lock())
    await holder.acquire()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Recorder(), SubscriptionConfig(stop_timeout=30), name="P")
    with anyio.fail_after(5):
        await manager.start()
        await anyio.sleep(0.02)
        assert sub.state is SubscriptionState.STANDBY
        await manager.stop()
    assert sub.state is SubscriptionState.STOPPED
    holder.release()


async def test_two_managers_in_one_task_stop_in_any_order():
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(2)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    first, second = SubscriptionManager(store, None, repo), SubscriptionManager(store, None, repo)
    a = await first.subscribe(Recorder(), name="A")
    b = await second.subscribe(Recorder(), name="B")
    with anyio.fail_after(10):
        await first.start()
        await second.start()
        await a.wait_for_position(2)
        await b.wait_for_position(2)
        await first.stop()  # not the reverse of the start order
        await second.stop()
    assert await repo.get_position("A") == 2
    assert await repo.get_position("B") == 2


async def test_a_stopped_manager_starts_again_from_its_checkpoints():
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(4)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events[:2], 0)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(start_from="beginning"), name="P")
    with anyio.fail_after(10):
        async with manager:
            await sub.wait_for_position(2)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events[2:], 2)
        async with manager:
            await sub.wait_for_position(4)
    assert projection.seen == [1, 2, 3, 4]
