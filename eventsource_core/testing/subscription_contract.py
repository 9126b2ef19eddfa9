"""Subscriptions behave the same on every backend."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ..checkpoints import CheckpointRepository
from ..events import DomainEvent
from ..store import EventStore
from ..subscriptions import SubscriptionConfig, SubscriptionManager
from .events import make_events


class Recorder:
    """A projection that remembers what it handled."""

    def __init__(self, types: list[type[DomainEvent]] | None = None) -> None:
        self.types = types
        self.handled: list[DomainEvent] = []

    def subscribed_to(self) -> list[type[DomainEvent]] | None:
        return self.types

    async def handle(self, event: DomainEvent) -> None:
        self.handled.append(event)


async def append(store: EventStore, count: int) -> list[Any]:
    events = make_events(count)
    return await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)


class SubscriptionContract:
    """Needs ``event_store`` and ``checkpoint_repo`` fixtures."""

    @pytest.mark.anyio
    async def test_catches_up_then_follows_live(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 5)
        projection = Recorder()
        manager = SubscriptionManager(event_store, None, checkpoint_repo)
        sub = await manager.subscribe(projection, SubscriptionConfig(poll_interval=0.05), name="R")
        async with manager:
            with anyio.fail_after(10):
                await sub.wait_for_position(5)
                await append(event_store, 2)
                await sub.wait_for_position(7)
        assert [e.aggregate_version for e in projection.handled] == [1, 2, 3, 4, 5, 1, 2]
        assert await checkpoint_repo.get_position("R") == 7
