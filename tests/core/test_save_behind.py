"""AFTER_BATCH saves run behind the reader during catch-up, one at a time, and lose nothing."""

import anyio
import pytest

from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class CountingStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_page(self, after_position, limit, event_types=None):
        self.reads += 1
        return await super().read_page(after_position, limit, event_types)


class SlowCheckpoints(InMemoryCheckpointRepository):
    """Saves that take a while, as a database commit does, and notice overlapping calls."""

    def __init__(self, store: CountingStore, fail_first: bool = False) -> None:
        super().__init__(event_store=store)
        self.store = store
        self.reads_during_saves = 0
        self.running = 0
        self.overlaps = 0
        self.saves: list[int] = []
        self.fail_first = fail_first
        self.projection: Counter | None = None
        self.handled_during_saves = 0

    async def save_position(self, subscription_id, position, event_id, event_type, *, events=1):
        self.running += 1
        self.overlaps += self.running > 1
        before = self.projection.count if self.projection else 0
        reads = self.store.reads
        try:
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            self.handled_during_saves += (self.projection.count if self.projection else 0) - before
            self.reads_during_saves += self.store.reads - reads
            if self.fail_first:
                self.fail_first = False
                raise OSError("the disk hiccuped")
            await super().save_position(
                subscription_id, position, event_id, event_type, events=events
            )
            self.saves.append(position)
        finally:
            self.running -= 1


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, event) -> None:
        self.count += 1


async def _catch_up(repo: SlowCheckpoints, store: CountingStore, total: int) -> Counter:
    projection = repo.projection = Counter()
    manager = SubscriptionManager(store, None, repo)
    config = SubscriptionConfig(
        batch_size=10, checkpoint_strategy=CheckpointStrategy.AFTER_BATCH, poll_interval=0.01
    )
    sub = await manager.subscribe(projection, config, name="P")
    with anyio.fail_after(10):
        async with manager:
            await sub.wait_for_position(total)
    return projection


async def test_saves_behind_the_reader_never_overlap_and_count_every_event():
    store = CountingStore()
    events = make_events(95)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    repo = SlowCheckpoints(store)
    projection = await _catch_up(repo, store, 95)
    [checkpoint] = await repo.get_all_checkpoints()
    assert projection.count == 95
    assert repo.overlaps == 0
    assert repo.reads_during_saves > 0  # the next page was read while a save was running
    assert repo.handled_during_saves == 0  # but nothing was handled past an unconfirmed save
    assert repo.saves == sorted(repo.saves)
    assert checkpoint.global_position == 95
    assert checkpoint.events_processed == 95


async def test_a_failed_save_behind_stops_the_subscription_and_keeps_its_progress():
    store = CountingStore()
    events = make_events(40)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    repo = SlowCheckpoints(store, fail_first=True)
    manager = SubscriptionManager(store, None, repo)
    config = SubscriptionConfig(batch_size=10, checkpoint_strategy=CheckpointStrategy.AFTER_BATCH)
    sub = await manager.subscribe(Counter(), config, name="P")
    with anyio.fail_after(10):
        async with manager:
            while not sub.done:
                await anyio.sleep(0.01)
    assert isinstance(manager.errors["P"], OSError)
    [checkpoint] = await repo.get_all_checkpoints()
    # The failed save's events were handed to the final save, so the count still adds up.
    assert checkpoint.events_processed == checkpoint.global_position
    assert checkpoint.global_position >= 10
