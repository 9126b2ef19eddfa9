"""Waiting on a position works for a projection that skips the event type found there."""

import anyio
import pytest

from eventsource_core import DomainEvent
from eventsource_core.subscriptions import SubscriptionManager
from eventsource_core.testing import Deposited, make_events
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

pytestmark = pytest.mark.anyio


class DepositsOnly:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [Deposited]

    async def handle(self, event: DomainEvent) -> None:
        self.seen.append(event.aggregate_version)


async def test_wait_for_the_head_returns_when_the_last_event_is_of_another_type():
    store = InMemoryEventStore()
    repo = InMemoryCheckpointRepository(event_store=store)
    events = make_events(5)  # Opened, Deposited, Withdrawn, Deposited, Withdrawn
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    projection = DepositsOnly()
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(projection, name="D")
    with anyio.fail_after(10):
        async with manager:
            await sub.wait_for_position(await store.current_position())
            more = make_events(2, events[0].aggregate_id, start_version=6)  # Deposited, Withdrawn
            await store.append(events[0].aggregate_id, events[0].aggregate_type, more, 5)
            await sub.wait_for_position(7)
    assert projection.seen == [2, 4, 6]
    # The checkpoint stays on the last event the projection handled.
    assert await repo.get_position("D") == 6
