"""The fast row decoder builds exactly what the codec builds, and falls back when unsure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from eventsource_core import DomainEvent, EventCodec, EventDecodeError, register_event
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLEventStore
from eventsource_postgres.decoding import RowDecoder


@register_event
class Tagged(DomainEvent):
    """Not scalar-only, so it always takes the codec's path."""

    event_type: str = "eventsource.tests.postgres.Tagged"
    aggregate_type: str = "eventsource.tests.postgres.Thing"
    tags: list[str]


def row(event: DomainEvent, codec: EventCodec, position: int, payload: str | None = None):
    envelope = codec.encode(event)
    return (
        position,
        envelope.event_id,
        envelope.event_type,
        envelope.aggregate_id,
        envelope.aggregate_type,
        envelope.aggregate_version,
        envelope.occurred_at,
        datetime.now(UTC),
        codec.dumps(dict(envelope.metadata)) if envelope.metadata else None,
        payload if payload is not None else codec.dumps(envelope.payload),
    )


def test_fast_and_general_paths_agree() -> None:
    codec = EventCodec()
    events = [*make_events(4), Tagged(aggregate_id=uuid4(), aggregate_version=1, tags=["a"])]
    events.append(make_events(1)[0].__class__(aggregate_id=uuid4(), owner="x", metadata={"k": 1}))
    decoded = RowDecoder(codec).decode([row(e, codec, i) for i, e in enumerate(events, 1)])
    assert [s.event for s in decoded] == events
    assert [s.global_position for s in decoded] == list(range(1, len(events) + 1))


@pytest.mark.parametrize(
    "payload", ['{"amount": {"x": 1}}', '{"amount": 5, "extra": 1}', "{}", '{"amount": "5"}']
)
def test_a_payload_that_does_not_fit_gets_what_the_codec_gives(payload: str) -> None:
    codec = EventCodec()
    event = make_events(2)[1]  # a deposit: amount is an int

    def general() -> object:
        return codec.decode(
            event_id=event.event_id,
            event_type=event.event_type,
            aggregate_id=event.aggregate_id,
            aggregate_type=event.aggregate_type,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            metadata=None,
            payload=payload,
        )

    try:
        expected = general()
    except EventDecodeError:
        with pytest.raises(EventDecodeError):
            RowDecoder(codec).decode([row(event, codec, 1, payload=payload)])
    else:
        assert (
            RowDecoder(codec).decode([row(event, codec, 1, payload=payload)])[0].event == expected
        )


@pytest.mark.anyio
async def test_events_read_back_equal_what_was_appended(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    events = make_events(5)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    tagged = Tagged(aggregate_id=uuid4(), aggregate_version=1, tags=["x", "y"], metadata={"a": 1})
    await store.append(tagged.aggregate_id, tagged.aggregate_type, [tagged], 0)
    assert [s.event for s in await store.read_page(0, 100)] == [*events, tagged]


def test_rows_from_a_pool_that_decodes_jsonb_itself_go_through_the_codec() -> None:
    codec = EventCodec()
    events = make_events(3)
    rows = []
    for i, event in enumerate(events, 1):
        position, eid, etype, aid, atype, version, occurred, recorded, _, payload = row(
            event, codec, i
        )
        rows.append(
            (position, eid, etype, aid, atype, version, occurred, recorded, {}, json.loads(payload))
        )
    assert [s.event for s in RowDecoder(codec).decode(rows)] == events
