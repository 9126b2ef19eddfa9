"""Sample events for the conformance suite, registered under names no application uses."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from ..events import DomainEvent, register_event

OPENED = "eventsource.testing.Opened"
DEPOSITED = "eventsource.testing.Deposited"
WITHDRAWN = "eventsource.testing.Withdrawn"
AUDITED = "eventsource.testing.Audited"


@register_event
class Opened(DomainEvent):
    event_type: str = OPENED
    aggregate_type: str = "eventsource.testing.Account"
    owner: str


@register_event
class Deposited(DomainEvent):
    event_type: str = DEPOSITED
    aggregate_type: str = "eventsource.testing.Account"
    amount: int


@register_event
class Withdrawn(DomainEvent):
    event_type: str = WITHDRAWN
    aggregate_type: str = "eventsource.testing.Account"
    amount: int


@register_event
class Audited(DomainEvent):
    """Carries every kind of value a payload may hold, to prove a store round-trips them."""

    event_type: str = AUDITED
    aggregate_type: str = "eventsource.testing.Account"
    auditor_id: UUID
    audited_at: datetime
    note: str
    score: float
    tags: list[str]
    optional_ref: UUID | None = None


def make_events(
    count: int, aggregate_id: UUID | None = None, start_version: int = 1
) -> list[DomainEvent]:
    """``count`` events for one account: an Opened, then alternating deposits and withdrawals.

    Version 1 is Opened; even versions are Deposited (amount = version); odd ones Withdrawn.
    """
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
