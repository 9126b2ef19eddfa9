"""Domain events and the registry that maps stored type names back to classes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast, dataclass_transform
from uuid import UUID, uuid4

import attrs

from .errors import (
    ConfigurationError,
    DuplicateEventTypeError,
    UnknownEventTypeError,
    UnregisteredEventError,
)

__all__ = [
    "DomainEvent",
    "EventRegistry",
    "default_registry",
    "event_type_names",
    "register_event",
]

E = TypeVar("E", bound="DomainEvent")


def _utc(value: datetime) -> datetime:
    """Keep every timestamp aware and in UTC, so lag arithmetic never mixes zones."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        raise ValueError(
            "occurred_at must be timezone-aware; pass datetime.now(UTC) or attach a tzinfo"
        )
    return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(attrs.field,))
class _EventFields:
    """Tells type checkers that events are frozen, keyword-only field classes (attrs at runtime)."""

    __slots__ = ()


class DomainEvent(_EventFields):
    """Base class for events. Subclasses add fields and default ``event_type``/``aggregate_type``.

    Decorate each subclass with :func:`register_event` so it can be stored and read back.
    """

    event_id: UUID = attrs.field(factory=uuid4)
    event_type: str
    aggregate_id: UUID
    aggregate_type: str
    aggregate_version: int = 1
    occurred_at: datetime = attrs.field(factory=_now, converter=_utc)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Until @register_event processes a subclass, building one says what is missing.

        Without this, a forgotten decorator shows up as missing ``event_type`` arguments, since
        a subclass's defaults only apply once attrs has processed it. The guard is a ``__new__``
        that :meth:`EventRegistry.register` drops before attrs builds the real class, so
        registered events pay nothing for it.
        """
        super().__init_subclass__(**kwargs)
        if "__attrs_attrs__" not in cls.__dict__ and "__new__" not in cls.__dict__:
            setattr(cls, "__new__", staticmethod(_unregistered_new))  # noqa: B010


def _unregistered_new(cls: type[DomainEvent], *args: Any, **kwargs: Any) -> DomainEvent:
    if "__attrs_attrs__" in cls.__dict__:
        return object.__new__(cls)  # an attrs class not (yet) registered: append will say so
    raise UnregisteredEventError(
        f"{_qualified(cls)} is not a registered event; decorate the class with @register_event "
        "(it makes the class an attrs class, so its field defaults apply, and registers its "
        "event_type for storage)"
    )


def _drop_guard(cls: type) -> None:
    guard = cls.__dict__.get("__new__")
    if isinstance(guard, staticmethod) and guard.__func__ is _unregistered_new:
        delattr(cls, "__new__")


if not TYPE_CHECKING:
    DomainEvent = attrs.frozen(kw_only=True)(DomainEvent)

ENVELOPE_FIELDS: frozenset[str] = frozenset(a.name for a in attrs.fields(cast(Any, DomainEvent)))


class EventRegistry:
    """Maps event type names to classes; one name belongs to exactly one class."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[DomainEvent]] = {}

    def register(self, cls: type[E]) -> type[E]:
        """Make ``cls`` an attrs class (if it is not one yet) and register its type name."""
        if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
            raise TypeError(f"{cls!r} is not a DomainEvent subclass; only events can be registered")
        if "__attrs_attrs__" not in cls.__dict__:
            _drop_guard(cls)  # so the attrs class built from it does not inherit the guard
            cls = attrs.frozen(kw_only=True)(cls)
        name = type_name_of(cls)
        known = self._by_name.get(name)
        if known is not None and known is not cls and _qualified(known) != _qualified(cls):
            raise DuplicateEventTypeError(
                f"event type {name!r} is already registered to {_qualified(known)}; "
                f"give {_qualified(cls)} a different event_type default"
            )
        self._by_name[name] = cls
        return cls

    def resolve(self, name: str) -> type[DomainEvent]:
        """Return the class stored under ``name``, or explain how to register it."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventTypeError(
                f"stored event type {name!r} has no registered class; import the module that "
                f"defines it and decorate the class with @register_event "
                f"(known types: {', '.join(sorted(self._by_name)) or 'none'})"
            ) from None

    def require(self, event: DomainEvent) -> str:
        """Check that ``event``'s class is the one registered for its type name."""
        name = event.event_type
        if self._by_name.get(name) is not type(event):
            raise UnregisteredEventError(
                f"cannot store {_qualified(type(event))} (event type {name!r}): it is not "
                "registered; decorate the class with @register_event before appending it"
            )
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)


def type_name_of(cls: type[DomainEvent]) -> str:
    """The ``event_type`` a class stamps on its instances, taken from the field's default."""
    default = attrs.fields_dict(cast(Any, cls))["event_type"].default
    if not isinstance(default, str) or not default:
        raise TypeError(
            f"{_qualified(cls)} needs a default for event_type, "
            f'for example: event_type: str = "{cls.__name__}"'
        )
    return default


def event_type_names(types: Iterable[type[DomainEvent] | str] | None) -> list[str] | None:
    """Turn a projection's ``subscribed_to()`` answer into type names; ``None`` means all."""
    if types is None:
        return None
    names = [_type_name_in_filter(t) for t in types]
    return list(dict.fromkeys(names))


def _type_name_in_filter(entry: object) -> str:
    if isinstance(entry, str) and entry:
        return entry
    if isinstance(entry, type) and issubclass(entry, DomainEvent):
        if "__attrs_attrs__" not in entry.__dict__:
            raise UnregisteredEventError(
                f"{_qualified(entry)} is listed in subscribed_to() but is not a registered "
                "event; decorate the class with @register_event"
            )
        return type_name_of(entry)
    raise ConfigurationError(
        f"subscribed_to() must return event classes or event type names, not {entry!r}; "
        "return a list such as [OrderPlaced, OrderShipped], or None for every event"
    )


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


default_registry = EventRegistry()


def register_event(cls: type[E]) -> type[E]:
    """Class decorator: make an event subclass an attrs class and register its type name."""
    return default_registry.register(cls)


EventFactory = Callable[..., DomainEvent]
