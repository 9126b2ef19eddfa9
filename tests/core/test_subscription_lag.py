"""A subscription reports lag over the event types its projection subscribes to."""

import anyio
import pytest

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Deposited, make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class DepositsOnly:
    def __init__(self) -> None:
        self.gate = anyio.Event()

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [Deposited]

    async def handle(self, event: DomainEvent) -> None:
        await self.gate.wait()


async def test_lag_counts_only_subscribed_types_and_drops_to_zero():
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(7)  # Opened, then Deposited at versions 2, 4, 6
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    await repo.save_position("D", 0, events[0].event_id, events[0].event_type, events=0)
    projection = DepositsOnly()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, SubscriptionConfig(batch_size=1), name="D")
    with anyio.fail_after(10):
        async with manager:
            before = await sub.lag()
            assert before is not None
            assert before.events_behind == 3
            assert before.latest_event_id == str(events[5].event_id)
            projection.gate.set()
            await sub.wait_for_position(6)
            after = await sub.lag()
    assert after is not None
    assert after.events_behind == 0
    assert after.lag_seconds == 0.0
