"""Cancelling the code that hosts a manager leaves a consistent state.

Whenever the cancellation lands, the saved checkpoint equals the last event the projection
finished, and a restart continues with the next one: nothing lost, nothing repeated.
"""

import anyio
import pytest

from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Recorder, append
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventBus, InMemoryEventStore

pytestmark = pytest.mark.anyio

STRATEGIES = [s.value for s in CheckpointStrategy]


class SlowRecorder(Recorder):
    """Awaits inside the handler, so a cancellation can land mid-event."""

    def __init__(self, after=None):
        super().__init__()
        self.after = after

    async def handle(self, event):
        await anyio.sleep(0.001)
        await super().handle(event)
        if self.after is not None:
            self.after(len(self.handled))


async def assert_consistent(store, repo, projection):
    positions = {s.event_id: s.global_position for s in await store.read_all()}
    last = positions[projection.handled[-1].event_id] if projection.handled else None
    assert await repo.get_position("P") == last
    assert projection.ids == list(positions)[: len(projection.handled)]
    rest = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(rest, SubscriptionConfig(), name="P")
    async with manager:
        with anyio.fail_after(20):
            await sub.wait_for_position(len(positions))
    assert projection.ids + rest.ids == list(positions)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_move_on_after_around_a_running_manager(strategy):
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    await append(store, 300)
    projection = SlowRecorder()
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    config = SubscriptionConfig(checkpoint_strategy=strategy, checkpoint_interval=3600)
    await manager.subscribe(projection, config, name="P")
    with anyio.move_on_after(0.05) as scope:
        async with manager:
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not manager.running
    await assert_consistent(store, repo, projection)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_cancel_from_inside_the_handler_after_seven_events(strategy):
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    await append(store, 20)
    with anyio.CancelScope() as scope:

        def cancel_at_seven(count):
            if count == 7:
                scope.cancel()

        projection = SlowRecorder(after=cancel_at_seven)
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(
            checkpoint_strategy=strategy, checkpoint_interval=3600, batch_size=5
        )
        await manager.subscribe(projection, config, name="P")
        async with manager:
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert len(projection.handled) >= 7
    await assert_consistent(store, repo, projection)


async def test_cancelled_start_then_stop_from_another_scope():
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    await append(store, 50)
    projection = SlowRecorder()
    manager = SubscriptionManager(store, None, repo)
    await manager.subscribe(projection, SubscriptionConfig(), name="P")
    with anyio.CancelScope() as scope:
        await manager.start()
        scope.cancel()
        await anyio.sleep_forever()
    assert manager.running, "the manager outlives the scope that started it"
    with anyio.move_on_after(0.02):
        await manager.subscriptions["P"].wait_for_position(50)
    await manager.stop()
    await assert_consistent(store, repo, projection)


class SlowStart(InMemoryEventStore):
    """A store whose current position takes a while, as a remote one may."""

    async def current_position(self) -> int:
        await anyio.sleep(0.3)
        return await super().current_position()


async def test_a_cancel_that_lands_while_the_manager_starts_leaves_it_stopped():
    store = SlowStart()
    repo = InMemoryCheckpointRepository(event_store=store)
    await append(store, 5)
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Recorder(), SubscriptionConfig(start_from="end"), name="P")
    with anyio.move_on_after(0.05) as scope:  # start() waits 0.3 s for "the end"
        async with manager:
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not manager.running
    assert sub.done
    async with manager:  # and it can be started again
        assert manager.running
    assert not manager.running
