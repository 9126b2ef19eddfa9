"""The event store port: append with optimistic concurrency, read streams and the global log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import attrs

from .errors import InvalidAppendError
from .events import DomainEvent

__all__ = [
    "Backlog",
    "EventBus",
    "EventSource",
    "EventStore",
    "Notifier",
    "ReadAll",
    "StoredEvent",
    "check_append",
]


@attrs.frozen(slots=True)
class StoredEvent:
    """An event with the place the store gave it: its global position and stream version."""

    event: DomainEvent
    global_position: int
    recorded_at: datetime

    @property
    def event_id(self) -> UUID:
        return self.event.event_id

    @property
    def event_type(self) -> str:
        return self.event.event_type

    @property
    def aggregate_id(self) -> UUID:
        return self.event.aggregate_id

    @property
    def aggregate_version(self) -> int:
        return self.event.aggregate_version


def check_append(
    aggregate_id: UUID, aggregate_type: str, events: Sequence[DomainEvent], expected_version: int
) -> None:
    """Reject an append whose events name another stream or do not continue its versions.

    Every backend calls this before writing, so a bad batch fails the same way everywhere.
    """
    if expected_version < 0:
        raise InvalidAppendError(
            f"expected_version must be >= 0 (0 for a new stream), got {expected_version}"
        )
    for offset, event in enumerate(events, start=1):
        if event.aggregate_id != aggregate_id or event.aggregate_type != aggregate_type:
            raise InvalidAppendError(
                f"event {event.event_type!r} belongs to {event.aggregate_type} "
                f"{event.aggregate_id}, not to the stream {aggregate_type} {aggregate_id} it was "
                "appended to; append each aggregate's events to its own stream"
            )
        if event.aggregate_version != expected_version + offset:
            raise InvalidAppendError(
                f"event {event.event_type!r} has aggregate_version {event.aggregate_version}, "
                f"but appending after version {expected_version} needs "
                f"{expected_version + offset}; number new events with get_next_version()"
            )


@attrs.frozen
class Backlog:
    """What a reader at some position has not seen yet, for lag metrics."""

    events_behind: int
    oldest_recorded_at: datetime | None
    latest_event_id: UUID | None
    latest_position: int | None


PageReader = Callable[[int, int, Sequence[str] | None], Awaitable[list[StoredEvent]]]


class ReadAll:
    """Result of ``read_all``: await it for one page, or ``async for`` over everything after."""

    __slots__ = ("_after", "_limit", "_read_page", "_types")

    def __init__(
        self,
        read_page: PageReader,
        after_position: int,
        limit: int | None,
        event_types: Sequence[str] | None,
    ) -> None:
        if after_position < 0:
            raise ValueError(f"after_position must be >= 0, got {after_position}")
        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be a positive number of events, got {limit}")
        self._read_page = read_page
        self._after = after_position
        self._limit = limit
        self._types = event_types

    def __await__(self) -> Generator[Any, None, list[StoredEvent]]:
        return self._read_page(self._after, self._limit or 2**62, self._types).__await__()

    async def __aiter__(self) -> AsyncIterator[StoredEvent]:
        after, page_size = self._after, self._limit or 1000
        while True:
            page = await self._read_page(after, page_size, self._types)
            for stored in page:
                yield stored
            if len(page) < page_size:
                return
            after = page[-1].global_position


@runtime_checkable
class EventSource(Protocol):
    """The read side a subscription needs: the global log in position order."""

    async def read_page(
        self, after_position: int, limit: int, event_types: Sequence[str] | None = None
    ) -> list[StoredEvent]:
        """Up to ``limit`` events after ``after_position``, in position order.

        Must never return an event while an earlier one may still appear (see the gap notes).
        """
        ...

    def read_all(
        self,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Sequence[str] | None = None,
    ) -> ReadAll:
        """Await for one page, or iterate for all events after ``after_position``."""
        ...

    async def current_position(self) -> int:
        """The highest position a reader may safely go to now; 0 for an empty store."""
        ...

    async def backlog(
        self, after_position: int, event_types: Sequence[str] | None = None
    ) -> Backlog:
        """Count and date what lies after ``after_position``, for lag metrics."""
        ...


@runtime_checkable
class EventStore(EventSource, Protocol):
    """An append-only store of aggregate streams with a global order."""

    async def append(
        self,
        aggregate_id: UUID,
        aggregate_type: str,
        events: Sequence[DomainEvent],
        expected_version: int,
    ) -> list[StoredEvent]:
        """Append atomically if the stream is at ``expected_version`` (0 for a new stream).

        Raises :class:`~eventsource_core.errors.ConcurrencyError` otherwise, writing nothing.
        """
        ...

    async def read_stream(
        self, aggregate_id: UUID, aggregate_type: str, after_version: int = 0
    ) -> list[StoredEvent]:
        """One aggregate's events after ``after_version``, in version order."""
        ...

    async def stream_version(self, aggregate_id: UUID, aggregate_type: str) -> int:
        """The stream's current version; 0 if it does not exist."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Something that can wake subscriptions: a bus, or a store with its own signal (NOTIFY)."""

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever new events may exist; returns a function that removes it."""
        ...


@runtime_checkable
class EventBus(Protocol):
    """Wakes readers after appends. It carries hints only: subscriptions read from the store."""

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        """Announce events that were just appended."""
        ...

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each publish; returns a function that removes it."""
        ...
