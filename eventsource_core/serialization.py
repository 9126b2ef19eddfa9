"""One cattrs converter turns events into JSON-ready dicts and back.

Backends keep the envelope fields in their own columns and the remaining fields in ``payload``,
so queries on type, stream and time never need to parse JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import attrs
import cattrs

from .errors import EventDecodeError
from .events import ENVELOPE_FIELDS, DomainEvent, EventRegistry, default_registry

__all__ = ["Envelope", "EventCodec", "make_converter", "register_hooks"]


def _structure_uuid(value: Any, _: type) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _structure_datetime(value: Any, _: type) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def register_hooks(converter: cattrs.Converter) -> None:
    """Teach ``converter`` the scalar types cattrs leaves alone (simple types first)."""
    converter.register_structure_hook(UUID, _structure_uuid)
    converter.register_unstructure_hook(UUID, str)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime, datetime.isoformat)


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    register_hooks(converter)
    return converter


#: Field types a JSON payload carries natively, with the JSON value types each accepts as-is.
JSON_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (float, int),
    bool: (bool,),
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
}


@attrs.frozen
class Envelope:
    """The columns every backend stores for an event, next to its JSON payload."""

    event_id: UUID
    event_type: str
    aggregate_id: UUID
    aggregate_type: str
    aggregate_version: int
    occurred_at: datetime
    metadata: Mapping[str, Any]
    payload: dict[str, Any]


class EventCodec:
    """Encodes registered events to envelopes and decodes stored rows back to events."""

    def __init__(
        self,
        registry: EventRegistry = default_registry,
        converter: cattrs.Converter | None = None,
    ) -> None:
        self.registry = registry
        self.converter = converter or make_converter()
        self._structure: dict[type[DomainEvent], Callable[[Any, Any], Any]] = {}

    def encode(self, event: DomainEvent) -> Envelope:
        """Split ``event`` into envelope columns and a JSON-ready payload."""
        self.registry.require(event)
        data = self.converter.unstructure(event)
        payload = {k: v for k, v in data.items() if k not in ENVELOPE_FIELDS}
        return Envelope(
            event_id=event.event_id,
            event_type=event.event_type,
            aggregate_id=event.aggregate_id,
            aggregate_type=event.aggregate_type,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            metadata=dict(event.metadata),
            payload=payload,
        )

    def decode(
        self,
        *,
        event_id: UUID | str,
        event_type: str,
        aggregate_id: UUID | str,
        aggregate_type: str,
        aggregate_version: int,
        occurred_at: datetime | str,
        metadata: Mapping[str, Any] | str | None,
        payload: Mapping[str, Any] | str,
    ) -> DomainEvent:
        """Rebuild an event from stored columns; JSON strings are parsed here.

        Catch-up speed is bounded by this method, so envelope values are converted directly
        and only the payload goes through the converter.
        """
        cls = self.registry.resolve(event_type)
        try:
            data = json.loads(payload) if isinstance(payload, str) else dict(payload)
            data["event_id"] = event_id if isinstance(event_id, UUID) else UUID(event_id)
            data["event_type"] = event_type
            data["aggregate_id"] = (
                aggregate_id if isinstance(aggregate_id, UUID) else UUID(aggregate_id)
            )
            data["aggregate_type"] = aggregate_type
            data["aggregate_version"] = aggregate_version
            data["occurred_at"] = _structure_datetime(occurred_at, datetime)
            data["metadata"] = (
                {}
                if not metadata or metadata == "{}"
                else json.loads(metadata)
                if isinstance(metadata, str)
                else metadata
            )
            structure = self._structure.get(cls)
            if structure is None:
                structure = self._structure[cls] = self._structurer(cls)
            event: DomainEvent = structure(data, cls)
        except Exception as exc:
            raise EventDecodeError(
                f"stored {event_type!r} event {event_id} does not fit {cls.__qualname__}: {exc}. "
                "Keep new fields optional (give them defaults) when an event class changes, "
                "or upcast old payloads before reading them"
            ) from exc
        return event

    def _structurer(self, cls: type[DomainEvent]) -> Callable[[Any, Any], Any]:
        """Classes whose own fields are JSON scalars are built directly; others via cattrs.

        A value of an unexpected type sends the row through cattrs, which converts or refuses it.
        """
        hook = self.converter.get_structure_hook(cls)
        own = [a for a in attrs.fields(cast(Any, cls)) if a.name not in ENVELOPE_FIELDS]
        if not all(a.type in JSON_SCALARS for a in own):
            return hook
        checks = [(a.name, JSON_SCALARS[a.type]) for a in own]

        def direct(data: dict[str, Any], cls: type[DomainEvent]) -> Any:
            for name, accepted in checks:
                if name in data and type(data[name]) not in accepted:
                    return hook(data, cls)
            try:
                return cls(**data)
            except TypeError:  # a payload from an older or newer class version
                return hook(data, cls)

        return direct

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))
