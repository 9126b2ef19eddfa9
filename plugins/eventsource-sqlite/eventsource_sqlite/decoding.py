"""Turning rows into events quickly, because catch-up speed is decode speed.

The codec's general path (cattrs, one hook per field) costs several times what SQLite needs to
fetch a row. For each event class this module compiles a builder once: JSON-native fields pass
through, UUIDs and datetimes get direct parsers, anything else uses the codec's own converter
hook. For plain attrs classes (no validators, converters or init hooks) the builder sets the
fields the way attrs' generated ``__init__`` does, without the keyword-argument call. Any row a
builder cannot handle goes through ``EventCodec.decode``, so errors and results stay the codec's.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID, SafeUUID

import attrs

from eventsource_core import DomainEvent, EventCodec, StoredEvent
from eventsource_core.events import ENVELOPE_FIELDS

from .queries import ROW_WIDTH

__all__ = ["RowDecoder", "parse_uuid"]

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown
_PASS_THROUGH = (str, int, bool)


def parse_uuid(text: str) -> UUID:
    """``UUID(text)`` for the canonical 36-character form we write, without its slow checks."""
    if len(text) != 36:
        return UUID(text)
    value = _new(UUID)
    _set(value, "int", int(text.replace("-", ""), 16))
    _set(value, "is_safe", _UNKNOWN)
    return value


def _parse_datetime(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


#: ``build(event_id, aggregate_id, aggregate_type, version, occurred_at, metadata, payload,
#: position, recorded_at)``: one row, straight to the stored event.
Builder = Callable[[str, UUID, str, int, str, Any, dict[str, Any], int, datetime], StoredEvent]


class RowDecoder:
    """Decodes page rows ``[position, event_id, ..., metadata, payload]`` into stored events."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._builders: dict[str, Builder | None] = {}
        #: Whether the rows of the last ``decode`` came in ascending position order.
        self.ascending = True

    def decode_page(self, text: str, *, ordered: bool) -> list[StoredEvent]:
        """Decode the flat JSON array a page query returns (``ROW_WIDTH`` values per event).

        ``ordered`` checks position order; otherwise the caller orders the events itself.
        """
        values = iter(json.loads(text))
        out = self.decode(zip(*[values] * ROW_WIDTH, strict=True))
        if ordered and not self.ascending:
            out.sort(key=_position)  # aggregation kept the subquery's order so far; never rely
        return out

    def decode_nested(self, text: str, *, ordered: bool) -> list[StoredEvent]:
        """Decode a JSON array with one array per event (the checked, slower page form)."""
        out = self.decode(json.loads(text))
        if ordered and not self.ascending:
            out.sort(key=_position)
        return out

    def decode(self, rows: Iterable[Sequence[Any]]) -> list[StoredEvent]:
        """Rows of ``[position, event_id, ..., metadata, payload]`` with parsed JSON objects."""
        builders = self._builders
        recorded_cache: dict[str, datetime] = {}
        stream_cache: dict[str, UUID] = {}
        out: list[StoredEvent] = []
        append = out.append
        stored = _stored
        previous, ascending = -1, True
        for pos, eid, etype, aid, atype, aver, occurred, recorded, meta, payload in rows:
            if pos <= previous:
                ascending = False
            previous = pos
            recorded_at = recorded_cache.get(recorded)
            if recorded_at is None:
                recorded_at = recorded_cache[recorded] = datetime.fromisoformat(recorded)
            if etype in builders:
                build = builders[etype]
            else:
                build = builders[etype] = self._builder(etype)
            if build is not None:
                aggregate_id = stream_cache.get(aid)
                if aggregate_id is None:
                    aggregate_id = stream_cache[aid] = parse_uuid(aid)
                try:
                    append(
                        build(
                            eid,
                            aggregate_id,
                            atype,
                            aver,
                            occurred,
                            meta,
                            payload,
                            pos,
                            recorded_at,
                        )
                    )
                    continue
                except Exception:
                    pass  # the codec decodes it again and explains what is wrong
            event = self.codec.decode(
                event_id=eid,
                event_type=etype,
                aggregate_id=aid,
                aggregate_type=atype,
                aggregate_version=aver,
                occurred_at=occurred,
                metadata=meta,
                payload=payload,
            )
            append(stored(event, pos, recorded_at))
        self.ascending = ascending
        return out

    def _builder(self, event_type: str) -> Builder | None:
        """Compile one constructor for a class, or ``None`` to always use the codec.

        A payload missing a field raises ``KeyError`` inside it, and the codec then applies the
        field's default (old events stored before the field existed).
        """
        if event_type not in self.codec.registry:
            return None
        cls = self.codec.registry.resolve(event_type)
        try:
            hints = typing.get_type_hints(cls)
            fields = attrs.fields(cast(Any, cls))
        except Exception:
            return None
        if attrs.fields_dict(cast(Any, cls))["event_type"].default != event_type:
            return None
        namespace: dict[str, Any] = {
            "cls": cls,
            "new": _new,
            "set": _set,
            "parse_uuid": parse_uuid,
            "uuid_from": parse_uuid,
            "parse_datetime": _parse_datetime,
            "utc": _utc,
            "UUID": UUID,
            "UNKNOWN": _UNKNOWN,
            "EVENT_TYPE": event_type,
            "fromiso": datetime.fromisoformat,
            "UTC": UTC,
            "Stored": StoredEvent,
            "stored": _stored,
        }
        values: list[tuple[str, str]] = []
        checks: list[str] = []
        for index, field in enumerate(fields):
            if field.name in ENVELOPE_FIELDS:
                if field.name not in _ENVELOPE:
                    return None  # a field this module does not know yet: the codec handles it
                values.append((field.name, _ENVELOPE[field.name]))
                continue
            if not field.init or field.alias != field.name or not field.name.isidentifier():
                return None
            kind = hints.get(field.name, Any)
            value = f"p[{field.name!r}]"
            if kind in _PASS_THROUGH:
                # A value of another JSON type goes to the codec, whose converter converts or
                # refuses it (as the codec's own fast path does).
                checks.append(
                    f"v{index} = {value}\n"
                    f"if type(v{index}) is not {kind.__name__}: raise TypeError({field.name!r})"
                )
                values.append((field.name, f"v{index}"))
                continue
            if kind is float:
                convert: Callable[[Any], Any] = float
            elif kind is UUID:
                convert = _uuid_field
            elif kind is datetime:
                convert = _parse_datetime
            else:
                convert = _hooked(self.codec.converter.get_structure_hook(kind), kind)
            namespace[f"convert_{index}"] = convert
            values.append((field.name, f"convert_{index}({value})"))
        if _plain(cls, fields):
            # What attrs' own __init__ does for a frozen class without validators or
            # converters (bar occurred_at's UTC one, done by utc()), minus argument parsing.
            # The event id is parsed inline: one UUID per event is the largest single cost.
            body = [
                "if len(eid) != 36: raise ValueError(eid)",
                "uid = new(UUID)",
                "set(uid, 'int', int(eid.replace('-', ''), 16))",
                "set(uid, 'is_safe', UNKNOWN)",
                "at = fromiso(occurred)",
                "if at.tzinfo is not UTC: at = utc(occurred)",
                "self = new(cls)",
            ]
            inline = {"event_id": "uid", "occurred_at": "at"}
            body += [f"set(self, {name!r}, {inline.get(name, expr)})" for name, expr in values]
            if _stored is StoredEvent:
                body.append("return Stored(self, pos, recorded)")
            else:  # what _stored does, without the call
                body += [
                    "st = new(Stored)",
                    "set(st, 'event', self)",
                    "set(st, 'global_position', pos)",
                    "set(st, 'recorded_at', recorded)",
                    "return st",
                ]
        else:
            # Through __init__, whose converter makes occurred_at UTC.
            args = [
                f"{name}={'parse_datetime(occurred)' if name == 'occurred_at' else expr}"
                for name, expr in values
                if name != "event_type"
            ]
            body = ["return stored(cls(" + ", ".join(args) + "), pos, recorded)"]
        body = [line for check in checks for line in check.split("\n")] + body
        source = "def build(eid, aid, atype, aver, occurred, meta, p, pos, recorded):\n" + "".join(
            f"    {line}\n" for line in body
        )
        exec(compile(source, f"<eventsource_sqlite decoder for {event_type}>", "exec"), namespace)
        builder: Builder = namespace["build"]
        return builder


_ENVELOPE = {
    "event_id": "uuid_from(eid)",
    "event_type": "EVENT_TYPE",
    "aggregate_id": "aid",
    "aggregate_type": "atype",
    "aggregate_version": "aver",
    "occurred_at": "utc(occurred)",
    "metadata": "meta",
}
_OCCURRED_CONVERTER = attrs.fields(cast(Any, DomainEvent)).occurred_at.converter


def _plain(cls: type, fields: Any) -> bool:
    """Whether building ``cls`` field by field skips nothing its ``__init__`` would do."""
    if any(
        getattr(cls, hook, None) is not None
        for hook in ("__attrs_pre_init__", "__attrs_post_init__", "_attrs_cached_hash")
    ):
        return False
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return False  # a hand-written __init__ may do anything
    if cls.__dict__.get("__new__") is not None or cast(Any, cls).__new__ is not _new:
        return False
    for field in fields:
        if field.validator is not None or field.on_setattr not in (None, attrs.setters.NO_OP):
            return False
        if field.converter is not None and not (
            field.name == "occurred_at" and field.converter is _OCCURRED_CONVERTER
        ):
            return False
    return True


def _utc(text: str) -> datetime:
    """``occurred_at`` as the envelope's converter would leave it: aware, in UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _direct_stored() -> Callable[[DomainEvent, int, datetime], StoredEvent]:
    """``StoredEvent(event, position, recorded_at)``, set directly when attrs would do just that."""
    fields = attrs.fields(StoredEvent)
    names = [f.name for f in fields]
    if names != ["event", "global_position", "recorded_at"] or not _plain(StoredEvent, fields):
        return StoredEvent

    def build(event: DomainEvent, position: int, recorded_at: datetime) -> StoredEvent:
        stored = _new(StoredEvent)
        _set(stored, "event", event)
        _set(stored, "global_position", position)
        _set(stored, "recorded_at", recorded_at)
        return stored

    return build


def _position(stored: StoredEvent) -> int:
    return stored.global_position


def _uuid_field(value: Any) -> UUID:
    return value if isinstance(value, UUID) else parse_uuid(str(value))


def _hooked(hook: Callable[[Any, Any], Any], kind: Any) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return hook(value, kind)

    return convert


_stored = _direct_stored()
