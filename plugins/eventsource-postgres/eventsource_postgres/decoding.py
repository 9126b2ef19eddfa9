"""Rows to events without the general converter, because catch-up speed is decode speed.

asyncpg already hands us UUIDs, ints and aware datetimes for the envelope columns. For an event
class whose own fields are plain JSON scalars (no converters, validators or post-init), the
event is assembled directly; any row that does not fit that plan exactly (a missing or extra
key, a value of another type) goes through :meth:`EventCodec.decode`, so results and errors stay
the codec's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import attrs

from eventsource_core import DomainEvent, EventCodec, StoredEvent
from eventsource_core.events import ENVELOPE_FIELDS
from eventsource_core.serialization import JSON_SCALARS

__all__ = ["RowDecoder"]

_DECODER = json.JSONDecoder()  # its decode() skips the type checks json.loads repeats per call
_new = object.__new__
_set = object.__setattr__

Plan = tuple[type[DomainEvent], dict[str, tuple[type, ...]]]


class RowDecoder:
    """Decodes ``[position, event_id, event_type, aggregate_id, aggregate_type, version,
    occurred_at, recorded_at, metadata, payload]`` rows into stored events."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._plans: dict[str, Plan | None] = {}

    def decode(self, rows: Sequence[Any]) -> list[StoredEvent]:
        plans = self._plans
        loads = _DECODER.decode
        out: list[StoredEvent] = []
        append = out.append
        for pos, eid, etype, aid, atype, version, occurred, recorded, meta, payload in rows:
            plan = plans[etype] if etype in plans else self._plan(etype)
            event = None
            if plan is not None and type(payload) is str:  # a pool may decode jsonb itself
                data = loads(payload)
                fields = plan[1]
                fits = len(data) == len(fields)
                if fits:
                    for key, value in data.items():
                        allowed = fields.get(key)
                        if allowed is None or type(value) not in allowed:
                            fits = False
                            break
                if fits:
                    event = _new(plan[0])
                    _set(event, "event_id", eid)
                    _set(event, "event_type", etype)
                    _set(event, "aggregate_id", aid)
                    _set(event, "aggregate_type", atype)
                    _set(event, "aggregate_version", version)
                    _set(event, "occurred_at", occurred)
                    _set(event, "metadata", loads(meta) if type(meta) is str else meta or {})
                    for key, value in data.items():
                        _set(event, key, value)
            if event is None:
                event = self.codec.decode(
                    event_id=eid,
                    event_type=etype,
                    aggregate_id=aid,
                    aggregate_type=atype,
                    aggregate_version=version,
                    occurred_at=occurred,
                    metadata=meta,
                    payload=payload,
                )
            stored = _new(StoredEvent)
            _set(stored, "event", event)
            _set(stored, "global_position", pos)
            _set(stored, "recorded_at", recorded)
            append(stored)
        return out

    def _plan(self, event_type: str) -> Plan | None:
        cls = self.codec.registry.resolve(event_type)
        plan: Plan | None = (cls, {})
        if hasattr(cls, "__attrs_post_init__") or not attrs.has(cls):
            plan = None
        else:
            for field in attrs.fields(cast(Any, cls)):
                if field.name in ENVELOPE_FIELDS:
                    continue
                types = JSON_SCALARS.get(field.type)
                if types is None or field.converter is not None or field.validator is not None:
                    plan = None
                    break
                assert plan is not None
                plan[1][field.name] = types
        self._plans[event_type] = plan
        return plan
