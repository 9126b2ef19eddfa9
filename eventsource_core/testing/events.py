"""Sample events for the conformance suite, registered under names no application uses."""

from __future__ import annotations

from uuid import UUID, uuid4

from ..events import DomainEvent, register_event


@register_event
class Opened(DomainEvent):
    event_type: str = "eventsource.testing.Opened"
    aggregate_type: str = "eventsource.testing.Account"
    owner: str


@register_event
class Deposited(DomainEvent):
    event_type: str = "eventsource.testing.Deposited"
    aggregate_type: str = "eventsource.testing.Account"
    amount: int


@register_event
class Withdrawn(DomainEvent):
    event_type: str = "eventsource.testing.Withdrawn"
    aggregate_type: str = "eventsource.testing.Account"
    amount: int


def make_events(
    count: int, aggregate_id: UUID | None = None, start_version: int = 1
) -> list[DomainEvent]:
    """``count`` events for one account: an Opened, then alternating deposits and withdrawals."""
    aggregate_id = aggregate_id or uuid4()
    events: list[DomainEvent] = []
    for i in range(count):
        version = start_version + i
        if version == 1:
            events.append(Opened(aggregate_id=aggregate_id, aggregate_version=version, owner="ada"))
        elif version % 2 == 0:
            events.append(
                Deposited(aggregate_id=aggregate_id, aggregate_version=version, amount=version)
            )
        else:
            events.append(Withdrawn(aggregate_id=aggregate_id, aggregate_version=version, amount=1))
    return events
