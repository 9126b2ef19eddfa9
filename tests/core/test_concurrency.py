"""Many writers and a live subscription: every event is handled once, in position order."""

from uuid import uuid4

import anyio
import pytest

from eventsource_core import AggregateRepository
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Recorder
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventBus, InMemoryEventStore

from .domain import Account, AccountOpened, MoneyDeposited

pytestmark = pytest.mark.anyio


async def open_accounts(repo, count, first=0):
    async def save_one(i):
        account = repo.create_new(uuid4())
        account.open(f"owner {i}")
        await repo.save(account)

    async with anyio.create_task_group() as tg:
        for i in range(first, first + count):
            tg.start_soon(save_one, i)


@pytest.mark.parametrize("strategy", [s.value for s in CheckpointStrategy])
async def test_200_concurrent_saves_with_a_live_subscription(strategy):
    store, bus = InMemoryEventStore(), InMemoryEventBus()
    checkpoints = InMemoryCheckpointRepository(event_store=store)
    repo = AggregateRepository(store, Account, "tests.core.Account", event_publisher=bus)
    projection = Recorder([AccountOpened])
    manager = SubscriptionManager(store, bus, checkpoints)
    config = SubscriptionConfig(checkpoint_strategy=strategy, checkpoint_interval=3600)
    sub = await manager.subscribe(projection, config, name="Accounts")
    async with manager:
        await open_accounts(repo, 200)
        with anyio.fail_after(20):
            await sub.wait_for_position(200)
    in_position_order = [s.event_id for s in await store.read_all()]
    assert len(projection.handled) == 200
    assert projection.ids == in_position_order
    assert bus.published == 200
    [data] = await checkpoints.get_all_checkpoints()
    assert (data.global_position, data.events_processed) == (200, 200)


async def test_saves_across_catch_up_and_live_with_several_projections():
    store, bus = InMemoryEventStore(), InMemoryEventBus()
    checkpoints = InMemoryCheckpointRepository(event_store=store)
    repo = AggregateRepository(store, Account, "tests.core.Account", event_publisher=bus)
    await open_accounts(repo, 100)
    everything, opened = Recorder(), Recorder([AccountOpened])
    deposits = Recorder([MoneyDeposited])
    manager = SubscriptionManager(store, bus, checkpoints)
    subs = [
        await manager.subscribe(everything, SubscriptionConfig(batch_size=7), name="All"),
        await manager.subscribe(opened, SubscriptionConfig(batch_size=1), name="Opened"),
        await manager.subscribe(deposits, name="Deposits"),
    ]
    async with manager:
        await open_accounts(repo, 100, first=100)
        with anyio.fail_after(20):
            for sub in subs[:2]:
                await sub.wait_for_position(200)
    in_position_order = [s.event_id for s in await store.read_all()]
    assert everything.ids == in_position_order
    assert opened.ids == in_position_order
    assert deposits.handled == []
    assert await checkpoints.get_position("Deposits") is None
