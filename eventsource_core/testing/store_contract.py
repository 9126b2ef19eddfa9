"""What every EventStore must do."""

from __future__ import annotations

import pytest

from ..store import EventStore
from .events import make_events


class EventStoreContract:
    """Needs an ``event_store`` fixture yielding an empty store."""

    @pytest.mark.anyio
    async def test_append_assigns_consecutive_positions(self, event_store: EventStore) -> None:
        events = make_events(3)
        stored = await event_store.append(
            events[0].aggregate_id, events[0].aggregate_type, events, 0
        )
        assert [s.global_position for s in stored] == [1, 2, 3]
        assert await event_store.current_position() == 3
