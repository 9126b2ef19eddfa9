"""A storage outage pauses a subscription (logged, backed off); a projection error stops it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
import pytest

from eventsource_core import StorageUnavailableError, StoredEvent
from eventsource_core.errors import ProjectionFailedError
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from eventsource_core.subscriptions.subscription import Subscription
from eventsource_core.testing import make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class FlakyStore(InMemoryEventStore):
    """A real in-memory store whose reads fail while ``down`` is set, like a restarting server."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed_reads = 0

    async def read_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        if self.down:
            self.failed_reads += 1
            raise StorageUnavailableError("the test storage is down; it comes back by itself")
        return await super().read_page(after_position, limit, event_types)


class FlakyCheckpoints(InMemoryCheckpointRepository):
    """Checkpoint writes fail while ``down`` is set."""

    def __init__(self, store: InMemoryEventStore) -> None:
        super().__init__(event_store=store)
        self.down = False

    async def save_position(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.down:
            raise StorageUnavailableError("the test checkpoint table is down")
        await super().save_position(*args, **kwargs)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[int] = []

    async def handle(self, event) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(event.aggregate_version)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Subscription, "RETRY_FIRST_DELAY", 0.01)
    monkeypatch.setattr(Subscription, "RETRY_MAX_DELAY", 0.05)


async def test_reads_that_fail_transiently_are_retried_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(6)
    stream, kind = events[0].aggregate_id, events[0].aggregate_type
    await store.append(stream, kind, events[:3], 0)
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(poll_interval=0.02), name="P")
    with caplog.at_level(logging.WARNING, logger="eventsource_core.subscriptions"):
        with anyio.fail_after(10):
            async with manager:
                await sub.wait_for_position(3)
                store.down = True
                await store.append(stream, kind, events[3:], 3)
                while store.failed_reads < 3:  # several attempts, with back-off in between
                    await anyio.sleep(0.01)
                assert sub.state is SubscriptionState.RUNNING
                store.down = False
                await sub.wait_for_position(6)
    assert projection.seen == [1, 2, 3, 4, 5, 6]
    assert await repo.get_position("P") == 6
    outages = [r for r in caplog.records if "cannot reach its storage" in r.getMessage()]
    assert len(outages) >= 3
    assert "the test storage is down" in outages[0].getMessage()
    assert outages[0].exc_info is not None  # the first one carries the traceback


async def test_a_failed_checkpoint_save_is_retried_without_handling_events_twice() -> None:
    store = InMemoryEventStore()
    repo = FlakyCheckpoints(store)
    events = make_events(4)
    stream, kind = events[0].aggregate_id, events[0].aggregate_type
    projection = Recorder()
    manager = SubscriptionManager(store, None, repo)
    config = SubscriptionConfig(
        poll_interval=0.02, checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT
    )
    sub = await manager.subscribe(projection, config, name="P")
    with anyio.fail_after(10):
        async with manager:
            repo.down = True
            await store.append(stream, kind, events, 0)
            await sub.wait_for_position(1)
            await anyio.sleep(0.1)  # saves keep failing; the runner waits, it does not fail
            assert sub.state is SubscriptionState.RUNNING
            assert await repo.get_position("P") is None
            repo.down = False
            await sub.wait_for_position(4)
    assert projection.seen == [1, 2, 3, 4]
    assert await repo.get_position("P") == 4
    [checkpoint] = await repo.get_all_checkpoints()
    assert checkpoint.events_processed == 4


async def test_stopping_during_an_outage_logs_the_unsaved_checkpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryEventStore()
    repo = FlakyCheckpoints(store)
    events = make_events(2)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    config = SubscriptionConfig(
        poll_interval=0.02, checkpoint_strategy=CheckpointStrategy.PERIODIC, checkpoint_interval=60
    )
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Recorder(), config, name="P")
    with caplog.at_level(logging.ERROR, logger="eventsource_core.subscriptions"):
        with anyio.fail_after(10):
            async with manager:
                await sub.wait_for_position(2)
                repo.down = True
    assert sub.state is SubscriptionState.STOPPED
    assert await repo.get_position("P") is None
    assert any("could not save its checkpoint" in r.getMessage() for r in caplog.records)


async def test_a_projection_error_still_stops_the_subscription() -> None:
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(3)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)

    class Broken:
        async def handle(self, event) -> None:  # type: ignore[no-untyped-def]
            if event.aggregate_version == 2:
                raise StorageUnavailableError("raised by the projection, not by the storage")

    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Broken(), SubscriptionConfig(poll_interval=0.02), name="P")
    with anyio.fail_after(10):
        async with manager:
            while not sub.done:
                await anyio.sleep(0.01)
    assert sub.state is SubscriptionState.FAILED
    assert isinstance(sub.error, ProjectionFailedError)
    assert await repo.get_position("P") == 1
