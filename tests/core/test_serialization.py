"""The codec every database backend uses: events survive a trip through JSON columns.

The memory store keeps event objects and never encodes them, so these tests are where the
memory suite exercises serialisation.
"""

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from eventsource_core import EventCodec, EventDecodeError
from eventsource_core.testing import AUDITED, DEPOSITED, Audited, make_events

codec = EventCodec()


def through_json(event):
    envelope = codec.encode(event)
    return codec.decode(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        aggregate_id=str(envelope.aggregate_id),
        aggregate_type=envelope.aggregate_type,
        aggregate_version=envelope.aggregate_version,
        occurred_at=envelope.occurred_at.isoformat(),
        metadata=codec.dumps(dict(envelope.metadata)),
        payload=codec.dumps(envelope.payload),
    )


def audited(**changes):
    values = {
        "aggregate_id": uuid4(),
        "metadata": {"user": "Zoë", "nested": {"n": [1, 2.5, None, True]}},
        "auditor_id": uuid4(),
        "audited_at": datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=-3))),
        "note": "✓ 'quotes' \"double\"",
        "score": 0.1 + 0.2,
        "tags": ["a", ""],
        "optional_ref": uuid4(),
    }
    values.update(changes)
    return Audited(**values)


@pytest.mark.parametrize("event", [*make_events(3), audited(), audited(optional_ref=None)])
def test_round_trip_through_json(event):
    assert through_json(event) == event


def test_payload_holds_only_the_subclass_fields():
    envelope = codec.encode(audited())
    assert set(envelope.payload) == {
        "auditor_id",
        "audited_at",
        "note",
        "score",
        "tags",
        "optional_ref",
    }
    assert isinstance(envelope.payload["auditor_id"], str)
    assert isinstance(envelope.payload["audited_at"], str)


def row(event_type, payload, **envelope):
    values = {
        "event_id": uuid4(),
        "event_type": event_type,
        "aggregate_id": uuid4(),
        "aggregate_type": "eventsource.testing.Account",
        "aggregate_version": 2,
        "occurred_at": "2025-01-01T00:00:00+00:00",
        "metadata": None,
        "payload": payload,
    }
    values.update(envelope)
    return values


def test_an_older_payload_without_an_optional_field_decodes():
    payload = codec.encode(audited()).payload
    del payload["optional_ref"]
    event = codec.decode(**row(AUDITED, payload))
    assert event.optional_ref is None
    assert event.metadata == {}


def test_a_newer_payload_with_an_unknown_field_decodes():
    event = codec.decode(**row(DEPOSITED, '{"amount": 5, "currency": "EUR"}'))
    assert event.amount == 5


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        (DEPOSITED, "{}"),
        (AUDITED, '{"auditor_id": "not-a-uuid", "audited_at": "2025-01-01T00:00:00+00:00"}'),
        (AUDITED, json.dumps({"auditor_id": str(uuid4()), "audited_at": "yesterday"})),
    ],
)
def test_a_payload_that_does_not_fit_says_how_to_evolve_events(event_type, payload):
    with pytest.raises(EventDecodeError) as caught:
        codec.decode(**row(event_type, payload))
    message = str(caught.value)
    assert f"stored {event_type!r} event" in message
    assert "does not fit" in message
    assert "give them defaults" in message


@pytest.mark.parametrize("payload", ['{"amount": "five"}', '{"amount": {"x": 1}}'])
def test_a_scalar_of_the_wrong_type_is_refused(payload):
    with pytest.raises(EventDecodeError):
        codec.decode(**row(DEPOSITED, payload))


def test_a_naive_stored_timestamp_is_read_as_utc():
    event = codec.decode(**row(DEPOSITED, {"amount": 1}, occurred_at="2025-01-01T12:00:00"))
    assert event.occurred_at == datetime(2025, 1, 1, 12, tzinfo=UTC)
