"""A batch that names another stream or skips versions is refused before anything is written."""

from uuid import uuid4

import pytest

from eventsource_core import InvalidAppendError
from eventsource_core.testing import make_events
from eventsource_memory import InMemoryEventStore

pytestmark = pytest.mark.anyio


async def test_events_of_another_aggregate_are_refused():
    store = InMemoryEventStore()
    events = make_events(2)
    with pytest.raises(
        InvalidAppendError, match="append each aggregate's events to its own stream"
    ):
        await store.append(uuid4(), events[0].aggregate_type, events, 0)
    assert await store.current_position() == 0


async def test_versions_must_continue_the_stream():
    store = InMemoryEventStore()
    events = make_events(3)
    with pytest.raises(InvalidAppendError, match="needs 1; number new events"):
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events[1:], 0)
    assert await store.current_position() == 0


async def test_negative_expected_version_is_refused():
    store = InMemoryEventStore()
    events = make_events(1)
    with pytest.raises(InvalidAppendError, match="0 for a new stream"):
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, -1)
