"""The fast row decoder gives exactly what the codec gives, for every kind of event class."""

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import attrs
import pytest

from eventsource_core import DomainEvent, EventCodec, EventDecodeError, EventRegistry
from eventsource_sqlite.decoding import RowDecoder

registry = EventRegistry()


@registry.register
class Plain(DomainEvent):
    event_type: str = "decoding.Plain"
    aggregate_type: str = "T"
    count: int
    label: str
    ratio: float
    ref: UUID
    at: datetime
    tags: list[str]
    note: str | None = None


@registry.register
class Validated(DomainEvent):
    event_type: str = "decoding.Validated"
    aggregate_type: str = "T"
    count: int = attrs.field(validator=attrs.validators.ge(0))


@registry.register
class PostInit(DomainEvent):
    event_type: str = "decoding.PostInit"
    aggregate_type: str = "T"
    count: int
    doubled: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "doubled", self.count * 2)


@registry.register
class Grown(DomainEvent):
    """A class that gained a field after events were stored without it."""

    event_type: str = "decoding.Grown"
    aggregate_type: str = "T"
    old: int
    new: str = "default"


codec = EventCodec(registry)


def row(position: int, event: DomainEvent, payload: dict | None = None) -> list:
    envelope = codec.encode(event)
    return [
        position,
        str(envelope.event_id),
        envelope.event_type,
        str(envelope.aggregate_id),
        envelope.aggregate_type,
        envelope.aggregate_version,
        envelope.occurred_at.isoformat(),
        datetime.now(UTC).isoformat(),
        dict(envelope.metadata),
        json.loads(json.dumps(envelope.payload if payload is None else payload)),
    ]


def by_codec(r: list) -> DomainEvent:
    _, eid, etype, aid, atype, aver, occurred, _, meta, payload = r
    return codec.decode(
        event_id=eid,
        event_type=etype,
        aggregate_id=aid,
        aggregate_type=atype,
        aggregate_version=aver,
        occurred_at=occurred,
        metadata=meta,
        payload=payload,
    )


EVENTS = [
    Plain(
        aggregate_id=uuid4(),
        count=3,
        label="x",
        ratio=2,
        ref=uuid4(),
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        tags=["a", "b"],
        metadata={"by": "test"},
    ),
    Validated(aggregate_id=uuid4(), count=4),
    PostInit(aggregate_id=uuid4(), count=21),
    Grown(aggregate_id=uuid4(), old=1, new="set"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_same_result_as_the_codec(event):
    rows = [row(7, event)]
    (stored,) = RowDecoder(codec).decode(json.loads(json.dumps(rows)))
    assert stored.event == by_codec(rows[0]) == event
    assert type(stored.event.ratio if isinstance(event, Plain) else 0.0) is float
    assert stored.global_position == 7
    if isinstance(event, PostInit):
        assert stored.event.doubled == 42  # the hook ran


def test_old_payload_without_a_new_field_gets_its_default():
    event = Grown(aggregate_id=uuid4(), old=1)
    (stored,) = RowDecoder(codec).decode([row(1, event, payload={"old": 1})])
    assert stored.event.new == "default"


def test_a_payload_that_does_not_fit_gets_the_codecs_error():
    bad = row(1, Validated(aggregate_id=uuid4(), count=1), payload={"count": -5})
    with pytest.raises(EventDecodeError, match="does not fit"):
        RowDecoder(codec).decode([bad])


def test_out_of_order_rows_are_put_in_position_order():
    rows = [row(p, Validated(aggregate_id=uuid4(), count=p)) for p in (3, 1, 2)]
    flat = [value for r in rows for value in r]
    decoded = RowDecoder(codec).decode_page(json.dumps(flat), ordered=True)
    assert [s.global_position for s in decoded] == [1, 2, 3]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"count": "5"}, 5), ({"count": True}, 1), ({"count": 5.0}, 5)],
    ids=["str", "bool", "float"],
)
def test_a_value_of_another_json_type_is_converted_like_the_codec_does(payload, expected):
    bad = row(1, Validated(aggregate_id=uuid4(), count=1), payload=payload)
    (stored,) = RowDecoder(codec).decode([bad])
    assert stored.event == by_codec(bad)
    assert stored.event.count == expected
    assert type(stored.event.count) is int


def test_plain_class_with_a_mistyped_value_goes_through_the_codec():
    good = row(1, EVENTS[0])
    bad = [*good[:9], {**good[9], "label": 7, "count": "3"}]
    (stored,) = RowDecoder(codec).decode([bad])
    assert stored.event == by_codec(bad)
    assert (stored.event.label, stored.event.count) == ("7", 3)
