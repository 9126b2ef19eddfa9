"""What every benchmark shares: a projection that does nothing, and a store filled in bulk."""

from __future__ import annotations

from uuid import uuid4

from eventsource_core import DomainEvent, EventStore
from eventsource_core.testing import make_events


class NoOp:
    """Handles every event and does nothing, so only the library's own cost is measured."""

    def subscribed_to(self) -> None:
        return None

    async def handle(self, event: DomainEvent) -> None:
        return None


async def fill_store(store: EventStore, total: int, per_stream: int = 1000) -> None:
    """Append until the store holds ``total`` events, ``per_stream`` to an aggregate."""
    have = await store.current_position()
    while have < total:
        events = make_events(min(per_stream, total - have), uuid4())
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        have += len(events)
