"""An in-process event store. Positions are assigned without awaiting, so appends are atomic."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import islice
from uuid import UUID

import anyio.lowlevel

from eventsource_core import (
    Backlog,
    ConcurrencyError,
    DomainEvent,
    EventRegistry,
    ReadAll,
    StoredEvent,
    default_registry,
)
from eventsource_core.store import check_append


class InMemoryEventStore:
    """Keeps events in lists; suitable for tests, demos and single-process tools."""

    def __init__(self, registry: EventRegistry = default_registry) -> None:
        self.registry = registry
        self._log: list[StoredEvent] = []
        self._by_type: dict[str, list[StoredEvent]] = {}
        self._streams: dict[tuple[str, UUID], list[StoredEvent]] = {}
        self._listeners: list[Callable[[], None]] = []

    async def append(
        self,
        aggregate_id: UUID,
        aggregate_type: str,
        events: Sequence[DomainEvent],
        expected_version: int,
    ) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        check_append(aggregate_id, aggregate_type, events, expected_version)
        for event in events:
            self.registry.require(event)
        stream = self._streams.setdefault((aggregate_type, aggregate_id), [])
        if len(stream) != expected_version:
            raise ConcurrencyError(
                f"{aggregate_type}-{aggregate_id}", expected_version, len(stream)
            )
        now = datetime.now(UTC)
        stored = [StoredEvent(event, len(self._log) + i + 1, now) for i, event in enumerate(events)]
        for item in stored:
            self._log.append(item)
            self._by_type.setdefault(item.event.event_type, []).append(item)
        stream.extend(stored)
        for listener in list(self._listeners):
            listener()
        return stored

    async def read_stream(
        self, aggregate_id: UUID, aggregate_type: str, after_version: int = 0
    ) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        return list(self._streams.get((aggregate_type, aggregate_id), [])[after_version:])

    async def stream_version(self, aggregate_id: UUID, aggregate_type: str) -> int:
        return len(self._streams.get((aggregate_type, aggregate_id), ()))

    async def read_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        if event_types is None:
            return self._log[after_position : after_position + limit]
        return self._filtered(after_position, event_types, limit)

    def read_all(
        self,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
    ) -> ReadAll:
        return ReadAll(self.read_page, after_position, limit, event_types)

    async def current_position(self) -> int:
        return len(self._log)

    async def backlog(
        self, after_position: int, event_types: Sequence[str] | None = None
    ) -> Backlog:
        pending = (
            self._log[after_position:]
            if event_types is None
            else self._filtered(after_position, event_types, None)
        )
        if not pending:
            return Backlog(0, None, None, None)
        return Backlog(
            len(pending), pending[0].recorded_at, pending[-1].event_id, pending[-1].global_position
        )

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Appends wake subscriptions even without a bus."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _filtered(
        self, after_position: int, event_types: Sequence[str], limit: int | None
    ) -> list[StoredEvent]:
        chunks = []
        for name in dict.fromkeys(event_types):
            items = self._by_type.get(name, [])
            start = bisect.bisect_right(items, after_position, key=_position)
            chunks.append(items[start : None if limit is None else start + limit])
        if len(chunks) == 1:
            return chunks[0]
        return list(islice(heapq.merge(*chunks, key=_position), limit))


def _position(stored: StoredEvent) -> int:
    return stored.global_position
