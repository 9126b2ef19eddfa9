"""SubscriptionManager lifecycle on the memory backend: start, stop, restart, errors, lag."""

import anyio
import attrs
import pytest

from eventsource_core import ProjectionFailedError, SubscriptionError
from eventsource_core.subscriptions import (
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from eventsource_core.testing import DEPOSITED, Deposited, FailingRecorder, Recorder, append
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventBus, InMemoryEventStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def store():
    return InMemoryEventStore()


@pytest.fixture
def repo(store):
    return InMemoryCheckpointRepository(event_store=store)


async def test_starting_twice_is_an_error(store, repo):
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    async with manager:
        with pytest.raises(SubscriptionError, match="already running; call stop"):
            await manager.start()
        assert manager.running
    assert not manager.running


async def test_the_same_manager_restarts_from_the_checkpoint(store, repo):
    first = await append(store, 3)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(start_from="beginning"), name="P")
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(3)
    more = await append(store, 2)
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(5)
    assert projection.ids == [s.event_id for s in first + more], "no replay on the restart"


async def test_restarting_a_failed_subscription_retries_the_failed_event(store, repo):
    stored = await append(store, 4)
    projection = FailingRecorder({stored[1].event_id})
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(), name="P")
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(4)
        assert sub.state is SubscriptionState.FAILED
        assert isinstance(manager.errors["P"], ProjectionFailedError)
    assert await repo.get_position("P") == 1
    projection.fail_on.clear()
    async with manager:
        assert manager.errors == {}
        with anyio.fail_after(10):
            await sub.wait_for_position(4)
    assert projection.ids == [s.event_id for s in stored]
    assert await repo.get_position("P") == 4


async def test_subscription_lag_uses_the_projection_types(store, repo):
    stored = await append(store, 5)
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Recorder([Deposited]), SubscriptionConfig(), name="P")
    await repo.save_position("P", 1, stored[0].event_id, stored[0].event_type)
    metrics = await sub.lag()
    assert (metrics.events_behind, metrics.latest_position) == (2, 4)
    direct = await repo.get_lag_metrics("P", [DEPOSITED])
    assert attrs.evolve(metrics, lag_seconds=0.0) == attrs.evolve(direct, lag_seconds=0.0)


class QuietSource:
    """The store's read side only: no listener, so it cannot wake a subscription itself."""

    def __init__(self, store):
        self.store = store

    async def read_page(self, after_position, limit, event_types=None):
        return await self.store.read_page(after_position, limit, event_types)

    def read_all(self, after_position=0, limit=None, event_types=None):
        return self.store.read_all(after_position, limit, event_types)

    async def current_position(self):
        return await self.store.current_position()

    async def backlog(self, after_position, event_types=None):
        return await self.store.backlog(after_position, event_types)


async def test_wakeups_come_from_the_bus_without_polling(store, repo):
    """With a poll interval far beyond the test's limit, only the bus can deliver in time."""
    bus = InMemoryEventBus()
    projection = Recorder()
    manager = SubscriptionManager(QuietSource(store), bus, repo)
    config = SubscriptionConfig(poll_interval=3600)
    sub = await manager.subscribe(projection, config, name="P")
    async with manager:
        with anyio.fail_after(10):
            for position in (1, 2):
                # The read that returned event 1 came before event 2 was appended, so only
                # the bus can make the reader look again before the poll interval.
                [stored] = await append(store, 1)
                await bus.publish([stored.event])
                await sub.wait_for_position(position)
    assert len(projection.handled) == 2


@pytest.mark.parametrize("start", ["end", 3])
async def test_restart_before_any_event_keeps_the_start_position(store, repo, start):
    """Nothing was handled, so nothing was saved; the restart must not replay skipped history."""
    await append(store, 3)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(start_from=start), name="P")
    async with manager:
        pass
    assert await repo.get_position("P") is None
    async with manager:
        new = await append(store, 1)
        with anyio.fail_after(10):
            await sub.wait_for_position(4)
    assert projection.ids == [s.event_id for s in new]


class SlowCheckpoints(InMemoryCheckpointRepository):
    """Reads that take a few scheduler turns, like a database round-trip."""

    async def get_position(self, subscription_id):
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        return await super().get_position(subscription_id)


async def test_restart_after_a_reset_rebuilds(store):
    repo = SlowCheckpoints(event_store=store)
    stored = await append(store, 3)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(), name="P")
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(3)
    await repo.reset_checkpoint("P")
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(3)
    assert projection.ids == [s.event_id for s in stored + stored]


async def test_the_default_name_is_the_projection_class(store, repo):
    class OrderProjection(Recorder):
        pass

    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(OrderProjection())
    assert sub.name == "OrderProjection"
    assert list(manager.subscriptions) == ["OrderProjection"]


async def test_twenty_projections_in_one_manager_each_see_every_event(store, repo):
    stored = await append(store, 30)
    projections = [Recorder() for _ in range(20)]
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    subs = [
        await manager.subscribe(p, SubscriptionConfig(batch_size=1 + i), name=f"P{i:02}")
        for i, p in enumerate(projections)
    ]
    async with manager:
        more = await append(store, 5)
        with anyio.fail_after(10):
            for sub in subs:
                await sub.wait_for_position(35)
    expected = [s.event_id for s in stored + more]
    assert all(p.ids == expected for p in projections)
    checkpoints = await repo.get_all_checkpoints()
    assert [c.projection_name for c in checkpoints] == [f"P{i:02}" for i in range(20)]
    assert {(c.global_position, c.events_processed) for c in checkpoints} == {(35, 35)}


async def test_polling_delivers_when_nothing_wakes_the_reader(store, repo):
    """Writers in other processes send no wake-up; the poll interval still finds their events."""
    projection = Recorder()
    manager = SubscriptionManager(QuietSource(store), None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(poll_interval=0.01), name="P")
    async with manager:
        with anyio.fail_after(10):
            for position in (1, 2, 3):
                await append(store, 1)
                await sub.wait_for_position(position)
    assert len(projection.handled) == 3


class StopsTheManager(Recorder):
    """Stops its own manager from inside a handler, like a tool that ends at a marker event."""

    def __init__(self, after):
        super().__init__()
        self.after = after
        self.manager = None

    async def handle(self, event):
        await super().handle(event)
        if len(self.handled) == self.after:
            await self.manager.stop()


async def test_stop_from_inside_a_handler_does_not_wait_for_that_handler(store, repo):
    stored = await append(store, 6)
    projection, bystander = StopsTheManager(after=3), Recorder()
    manager = SubscriptionManager(store, None, repo)
    projection.manager = manager
    config = SubscriptionConfig(stop_timeout=3600)
    sub = await manager.subscribe(projection, config, name="P")
    other = await manager.subscribe(bystander, config, name="Other")
    await manager.start()
    with anyio.fail_after(10):
        await sub.wait_for_position(6)
        await other.wait_for_position(6)
    assert not manager.running
    assert sub.state is SubscriptionState.STOPPED and manager.errors == {}
    assert projection.ids == [s.event_id for s in stored[:3]]
    assert await repo.get_position("P") == 3, "the final checkpoint is still saved"
    assert (await repo.get_position("Other") or 0) == other.position

    projection.after = None
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(6)
    assert projection.ids == [s.event_id for s in stored]
