"""Decoding stored rows back into events, including payloads written by other class versions."""

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from eventsource_core import DomainEvent, EventCodec, EventDecodeError, register_event


@register_event
class PriceSet(DomainEvent):
    event_type: str = "tests.serialization.PriceSet"
    aggregate_type: str = "Product"
    price: float
    currency: str


@register_event
class Assigned(DomainEvent):
    event_type: str = "tests.serialization.Assigned"
    aggregate_type: str = "Ticket"
    assignee: UUID
    due: datetime | None = None


def _row(codec: EventCodec, event: DomainEvent, **changes):
    envelope = codec.encode(event)
    row = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "aggregate_id": str(envelope.aggregate_id),
        "aggregate_type": envelope.aggregate_type,
        "aggregate_version": envelope.aggregate_version,
        "occurred_at": envelope.occurred_at.isoformat(),
        "metadata": json.dumps(dict(envelope.metadata)),
        "payload": json.dumps(envelope.payload),
    }
    row.update(changes)
    return row


def test_scalar_and_typed_payloads_round_trip():
    codec = EventCodec()
    scalar = PriceSet(aggregate_id=uuid4(), price=9.5, currency="EUR", metadata={"by": "ops"})
    typed = Assigned(aggregate_id=uuid4(), assignee=uuid4(), due=datetime(2030, 1, 1, tzinfo=UTC))
    assert codec.decode(**_row(codec, scalar)) == scalar
    assert codec.decode(**_row(codec, typed)) == typed


def test_a_payload_with_a_field_the_class_no_longer_has_still_decodes():
    codec = EventCodec()
    event = PriceSet(aggregate_id=uuid4(), price=1.0, currency="USD")
    row = _row(codec, event, payload=json.dumps({"price": 1.0, "currency": "USD", "old": 1}))
    assert codec.decode(**row) == event


def test_a_payload_missing_a_required_field_names_the_fix():
    codec = EventCodec()
    event = PriceSet(aggregate_id=uuid4(), price=1.0, currency="USD")
    row = _row(codec, event, payload=json.dumps({"price": 1.0}))
    with pytest.raises(EventDecodeError, match="give them defaults"):
        codec.decode(**row)


def test_timestamps_come_back_aware_and_in_utc():
    codec = EventCodec()
    plus_two = timezone(timedelta(hours=2))
    event = PriceSet(
        aggregate_id=uuid4(),
        price=1.0,
        currency="USD",
        occurred_at=datetime(2030, 1, 1, 12, tzinfo=plus_two),
    )
    assert event.occurred_at.tzinfo is UTC
    assert event.occurred_at.hour == 10
    naive = _row(codec, event, occurred_at="2030-01-01T10:00:00")
    assert codec.decode(**naive).occurred_at == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_naive_timestamps_are_refused_when_creating_events():
    with pytest.raises(ValueError, match="timezone-aware"):
        PriceSet(aggregate_id=uuid4(), price=1.0, currency="USD", occurred_at=datetime(2030, 1, 1))
