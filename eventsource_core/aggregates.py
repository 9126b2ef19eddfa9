"""Aggregates rebuild their state from events and record new ones for the repository to save."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar
from uuid import UUID

from .errors import AggregateNotFoundError
from .events import DomainEvent
from .store import EventBus, EventStore

__all__ = ["AggregateRepository", "AggregateRoot"]

S = TypeVar("S")
A = TypeVar("A", bound="AggregateRoot")  # type: ignore[type-arg]


class AggregateRoot(Generic[S]):
    """Base for aggregates whose state of type ``S`` is a fold over their events.

    Subclasses set ``aggregate_type`` and implement ``_get_initial_state`` and ``_apply``.
    """

    aggregate_type: str = ""

    def __init__(self, aggregate_id: UUID) -> None:
        self.aggregate_id = aggregate_id
        self._version = 0
        self._state: S | None = None
        self._uncommitted: list[DomainEvent] = []

    def _get_initial_state(self) -> S:
        raise NotImplementedError(f"{type(self).__name__} must implement _get_initial_state()")

    def _apply(self, event: DomainEvent) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _apply(event)")

    @property
    def version(self) -> int:
        """The version of the last applied event; 0 for a new aggregate."""
        return self._version

    @property
    def state(self) -> S:
        if self._state is None:
            self._state = self._get_initial_state()
        return self._state

    @property
    def uncommitted_events(self) -> list[DomainEvent]:
        return list(self._uncommitted)

    def get_next_version(self) -> int:
        return self._version + 1

    def apply_event(self, event: DomainEvent, is_new: bool = True) -> None:
        """Fold ``event`` into the state; new events wait for the repository to save them."""
        if event.aggregate_version != self._version + 1:
            raise ValueError(
                f"{type(self).__name__} {self.aggregate_id} is at version {self._version}; "
                f"event {event.event_type!r} has version {event.aggregate_version}, expected "
                f"{self._version + 1}. Build new events with aggregate_version="
                "self.get_next_version()"
            )
        self._apply(event)
        self._version = event.aggregate_version
        if is_new:
            self._uncommitted.append(event)

    def load_from_history(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self.apply_event(event, is_new=False)

    def mark_events_as_committed(self) -> None:
        self._uncommitted.clear()


class AggregateRepository(Generic[A]):
    """Loads aggregates from a store and saves their new events with optimistic concurrency."""

    def __init__(
        self,
        event_store: EventStore,
        aggregate_factory: Callable[[UUID], A],
        aggregate_type: str,
        event_publisher: EventBus | None = None,
    ) -> None:
        if not aggregate_type:
            raise ValueError("aggregate_type must name the aggregate, for example 'Order'")
        self.event_store = event_store
        self.aggregate_factory = aggregate_factory
        self.aggregate_type = aggregate_type
        self.event_publisher = event_publisher

    def create_new(self, aggregate_id: UUID) -> A:
        return self.aggregate_factory(aggregate_id)

    async def load(self, aggregate_id: UUID) -> A:
        """Rebuild an aggregate from its stream; raise if it has no events."""
        stored = await self.event_store.read_stream(aggregate_id, self.aggregate_type)
        if not stored:
            raise AggregateNotFoundError(
                f"{self.aggregate_type} {aggregate_id} has no events; "
                "use create_new() for a new aggregate or check the id"
            )
        aggregate = self.aggregate_factory(aggregate_id)
        aggregate.load_from_history(s.event for s in stored)
        return aggregate

    async def exists(self, aggregate_id: UUID) -> bool:
        return await self.event_store.stream_version(aggregate_id, self.aggregate_type) > 0

    async def save(self, aggregate: A) -> None:
        """Append the new events; after a concurrent save this raises and writes nothing."""
        pending: Sequence[DomainEvent] = aggregate.uncommitted_events
        if not pending:
            return
        expected = aggregate.version - len(pending)
        await self.event_store.append(
            aggregate.aggregate_id, self.aggregate_type, pending, expected
        )
        aggregate.mark_events_as_committed()
        if self.event_publisher is not None:
            await self.event_publisher.publish(pending)
