"""An in-process bus that wakes subscriptions after appends."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eventsource_core import DomainEvent


class InMemoryEventBus:
    """Wakes listeners after each publish; subscriptions then read the store themselves."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self.published = 0

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        self.published += len(events)
        for listener in list(self._listeners):
            listener()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove
