"""Every error the library raises on purpose derives from :class:`EventSourceError`.

Each message names what went wrong and what to do next, so callers can show it as-is.
"""

from __future__ import annotations


class EventSourceError(Exception):
    """Base class for errors raised by eventsource-core and its plugins."""


class EventTypeError(EventSourceError):
    """Base class for problems with event types and their registration."""


class DuplicateEventTypeError(EventTypeError):
    """Two different classes were registered under one event type name."""


class UnregisteredEventError(EventTypeError):
    """An event class was used for storage without being registered."""


class UnknownEventTypeError(EventTypeError):
    """Stored data names an event type that no registered class matches."""


class EventDecodeError(EventTypeError):
    """A stored payload does not match its registered event class."""


class ConcurrencyError(EventSourceError):
    """An append expected a stream version that is no longer current; nothing was written."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, but the append expected {expected}; "
            "nothing was written. Reload the aggregate and apply the command again."
        )


class InvalidAppendError(EventSourceError, ValueError):
    """The events given to ``append`` do not belong to the stream or skip versions."""


class AggregateNotFoundError(EventSourceError):
    """An aggregate was loaded that has no events."""


class ConfigurationError(EventSourceError, ValueError):
    """A configuration value is invalid; the message says which and why."""


class SubscriptionError(EventSourceError):
    """A subscription cannot be created, started or continued."""


class ProjectionFailedError(SubscriptionError):
    """A projection raised while handling an event; the checkpoint stays before that event."""

    def __init__(self, name: str, position: int | None, event_type: str | None) -> None:
        self.name = name
        self.position = position
        self.event_type = event_type
        where = (
            f"event {event_type!r} at position {position}" if position is not None else "a batch"
        )
        super().__init__(
            f"subscription {name!r} stopped: its projection raised while handling {where}. "
            "The checkpoint stays before that event; fix the handler and start the subscription "
            "again to retry it."
        )


class PluginError(EventSourceError):
    """A plugin is missing, broken or registered something twice."""


class UnknownBackendError(PluginError, ValueError):
    """A URL names a scheme that no installed plugin provides."""


class StorageError(EventSourceError):
    """A backend cannot use its database as asked."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached right now (down, restarting, network); retrying may work.

    Backends raise it for connection failures only, never for bad data or bad SQL, so a
    subscription can back off and resume from its checkpoint instead of failing.
    """


class SchemaError(StorageError):
    """The database holds a schema this backend did not create or cannot use."""


class OwnershipLostError(StorageError):
    """This process no longer owns the subscription; a newer owner has taken over."""
