"""Small tools the contracts share: appending sample events, recording projections, waiting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import anyio

from ..checkpoints import CheckpointRepository
from ..events import DomainEvent
from ..store import EventStore, StoredEvent
from .events import make_events

__all__ = [
    "FailingRecorder",
    "Recorder",
    "append",
    "append_to",
    "wait_for_checkpoint",
]

#: Upper bound for any wait in the suite. A correct backend finishes far sooner; this only
#: turns a hang into a failure instead of a stuck CI job.
WAIT = 20.0


async def append(store: EventStore, count: int) -> list[StoredEvent]:
    """Append ``count`` sample events to a new account stream."""
    return await append_to(store, uuid4(), count, 0)


async def append_to(
    store: EventStore, aggregate_id: UUID, count: int, version: int
) -> list[StoredEvent]:
    """Append ``count`` sample events to ``aggregate_id``'s stream, now at ``version``."""
    events = make_events(count, aggregate_id, start_version=version + 1)
    return await store.append(aggregate_id, events[0].aggregate_type, events, version)


class Recorder:
    """A projection that remembers what it handled, optionally limited to some types."""

    def __init__(self, types: Sequence[type[DomainEvent] | str] | None = None) -> None:
        self.types = list(types) if types is not None else None
        self.handled: list[DomainEvent] = []

    def subscribed_to(self) -> list[Any] | None:
        return self.types

    async def handle(self, event: DomainEvent) -> None:
        self.handled.append(event)

    @property
    def ids(self) -> list[UUID]:
        return [e.event_id for e in self.handled]


class FailingRecorder(Recorder):
    """Raises on the events whose ids are in ``fail_on``; records the others."""

    def __init__(self, fail_on: set[UUID]) -> None:
        super().__init__()
        self.fail_on = fail_on

    async def handle(self, event: DomainEvent) -> None:
        if event.event_id in self.fail_on:
            raise RuntimeError(f"projection bug on {event.event_type}")
        await super().handle(event)


async def wait_for_checkpoint(repo: CheckpointRepository, name: str, position: int) -> None:
    """Poll until ``name``'s checkpoint reaches ``position`` (bounded by :data:`WAIT`)."""
    with anyio.fail_after(WAIT):
        # A repository has no change signal to wait on, so polling it is the point here.
        while (await repo.get_position(name) or 0) < position:  # noqa: ASYNC110
            await anyio.sleep(0.01)


def ids(stored: Sequence[StoredEvent]) -> list[UUID]:
    return [s.event_id for s in stored]
