"""AFTER_EACH_EVENT with a repository that queues saves: nothing lost, every event counted once.

The repository here keeps the queueing contract (a save applies only if the one queued before
it did) over the memory backend, and can hold one save forever so that the subscription is
cancelled while it waits for it.
"""

from uuid import UUID

import anyio
import pytest

from eventsource_core import DomainEvent, QueueingCheckpointRepository, StorageError
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class Outcome:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.applied = False


class QueueingRepository(InMemoryCheckpointRepository):
    """Saves run when awaited; the one at ``hold_at`` never finishes on its own."""

    def __init__(
        self, store: InMemoryEventStore, hold_at: int, write_first: bool, fail_at: int = 0
    ) -> None:
        super().__init__(event_store=store)
        self.hold_at = hold_at
        self.write_first = write_first
        self.fail_at = fail_at
        self._before: Outcome | None = None

    def queue_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ):
        before, mine = self._before, Outcome()
        self._before = mine
        return self._save(before, mine, subscription_id, position, event_id, event_type, events)

    async def _save(self, before, mine, name, position, event_id, event_type, events) -> None:
        try:
            if before is not None:
                await before.done.wait()
                if not before.applied:
                    raise StorageError("the save queued before this one did not apply")
            if position == self.fail_at:
                raise StorageError("refused by the test")
            if self.write_first or position != self.hold_at:
                await self.save_position(name, position, event_id, event_type, events=events)
                mine.applied = True
            if position == self.hold_at:
                await anyio.sleep_forever()
        finally:
            mine.done.set()


class Recorder:
    def __init__(self) -> None:
        self.positions: list[int] = []

    def subscribed_to(self) -> None:
        return None

    async def handle(self, event: DomainEvent) -> None:
        self.positions.append(event.aggregate_version)


@pytest.mark.parametrize(
    ("write_first", "fail_at"),
    [(True, 0), (False, 0), (True, 5)],
    ids=["had-applied", "had-not", "had-applied-next-failed"],
)
async def test_cancelled_while_confirming_a_save_counts_every_event_once(write_first, fail_at):
    """The save of 4 hangs; the stop cancels the wait; its outcome is learnt or made sure."""
    store = InMemoryEventStore()
    events = make_events(10)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    repo = QueueingRepository(store, hold_at=4, write_first=write_first, fail_at=fail_at)
    assert isinstance(repo, QueueingCheckpointRepository)
    config = SubscriptionConfig(
        checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT,
        batch_size=100,
        poll_interval=0.01,
        stop_timeout=0.2,
    )
    recorder = Recorder()
    manager = SubscriptionManager(store, None, repo)
    await manager.subscribe(recorder, config, name="P")
    async with manager:
        with anyio.fail_after(5):
            while len(recorder.positions) < 5:  # 5 is handled while the save of 4 hangs
                await anyio.sleep(0.01)
    # The stop timed out, cancelled the wait for the save of 4, and saved what was handled.
    assert recorder.positions == [1, 2, 3, 4, 5]
    checkpoint = (await repo.get_all_checkpoints())[0]
    assert checkpoint.global_position == 5
    assert checkpoint.events_processed == 5


async def test_without_queueing_the_subscription_saves_each_event_before_the_next():
    store = InMemoryEventStore()
    events = make_events(5)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    repo = InMemoryCheckpointRepository(event_store=store)
    assert not isinstance(repo, QueueingCheckpointRepository)
    seen: list[int | None] = []

    class Looking(Recorder):
        async def handle(self, event: DomainEvent) -> None:
            seen.append(await repo.get_position("P"))

    manager = SubscriptionManager(store, None, repo)
    config = SubscriptionConfig(checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT)
    sub = await manager.subscribe(Looking(), config, name="P")
    async with manager:
        await sub.wait_for_position(5)
    assert seen == [None, 1, 2, 3, 4]
