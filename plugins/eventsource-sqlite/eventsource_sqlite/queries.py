"""SQL shared by the store and the checkpoint repository, built once per shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from uuid import UUID

import aiosqlite

from eventsource_core import Backlog

__all__ = [
    "COLUMNS",
    "ROW_WIDTH",
    "as_json",
    "backlog",
    "checked_json",
    "counted_json",
    "page_query",
]

COLUMNS = (
    "global_position, event_id, event_type, aggregate_id, aggregate_type, aggregate_version, "
    "occurred_at, recorded_at, metadata, payload"
)
_ROW = (
    "json_array(global_position, event_id, event_type, aggregate_id, aggregate_type, "
    "aggregate_version, occurred_at, recorded_at, json(metadata), json(payload))"
)


#: Number of values per event in the flat array :func:`as_json` builds.
ROW_WIDTH = 10

# Text columns are quoted by SQLite; metadata and payload are JSON text this backend wrote, so
# they are spliced in as they are (a page that does not parse is read again by checked_json).
_FLAT_ROW = (
    "global_position || ',' || json_quote(event_id) || ',' || json_quote(event_type) || ',' || "
    "json_quote(aggregate_id) || ',' || json_quote(aggregate_type) || ',' || "
    "aggregate_version || ',' || json_quote(occurred_at) || ',' || json_quote(recorded_at) || "
    "',' || metadata || ',' || payload"
)


@cache
def as_json(select: str) -> str:
    """Fold a SELECT of :data:`COLUMNS` into one flat JSON array text, in the SELECT's order.

    One string per page, parsed by one ``json.loads``, costs less than building a tuple per
    row and parsing each payload on its own; catch-up speed is mostly this. The array is flat
    (``ROW_WIDTH`` values per event) because a list per event costs more to build and unpack.
    """
    return f"SELECT '[' || COALESCE(group_concat({_FLAT_ROW}, ','), '') || ']' FROM ({select})"


@cache
def counted_json(select: str) -> str:
    """:func:`as_json` plus the page's row count and last position, known before decoding,
    so the next page can be fetched while this one is decoded."""
    return (
        f"SELECT '[' || COALESCE(group_concat({_FLAT_ROW}, ','), '') || ']', COUNT(*), "
        f"MAX(global_position) FROM ({select})"
    )


@cache
def checked_json(select: str) -> str:
    """Like :func:`as_json`, one array per event, with every stored JSON value validated by
    SQLite: the slower path for a page whose text did not parse."""
    return f"SELECT json_group_array({_ROW}) FROM ({select})"


#: Above this many types one scan in position order beats a merge of per-type index ranges.
MERGE_LIMIT = 8


@cache
def page_query(type_count: int | None) -> str:
    """The page SELECT (wrapped by :func:`as_json`) for ``type_count`` event types or all.

    One type walks the (event_type, global_position) index; a few types merge one bounded
    index range per type, so a page never costs more than ``limit`` rows per type.
    """
    if type_count is None:
        return (
            f"SELECT {COLUMNS} FROM events WHERE global_position > ? "
            "ORDER BY global_position LIMIT ?"
        )
    if type_count == 1:
        return (
            f"SELECT {COLUMNS} FROM events WHERE event_type = ? AND global_position > ? "
            "ORDER BY global_position LIMIT ?"
        )
    if type_count == 0 or type_count > MERGE_LIMIT:
        marks = ", ".join("?" * type_count)
        return (
            f"SELECT {COLUMNS} FROM events WHERE event_type IN ({marks}) "
            "AND global_position > ? ORDER BY global_position LIMIT ?"
        )
    part = (
        f"SELECT * FROM (SELECT {COLUMNS} FROM events WHERE event_type = ? "
        "AND global_position > ? ORDER BY global_position LIMIT ?)"
    )
    merged = " UNION ALL ".join([part] * type_count) + " ORDER BY global_position LIMIT ?"
    return merged


def page_params(
    after: int, limit: int, event_types: Sequence[str] | None
) -> tuple[str, tuple[object, ...]]:
    if event_types is None:
        return page_query(None), (after, limit)
    types = list(dict.fromkeys(event_types))
    count = len(types)
    if count == 1:
        return page_query(1), (types[0], after, limit)
    if count == 0 or count > MERGE_LIMIT:
        return page_query(count), (*types, after, limit)
    params: list[object] = []
    for name in types:
        params += (name, after, limit)
    params.append(limit)
    return page_query(count), tuple(params)


async def backlog(
    db: aiosqlite.Connection, after_position: int, event_types: Sequence[str] | None
) -> Backlog:
    """Count and date the relevant events after ``after_position`` in one statement."""
    where = "global_position > ?"
    params: list[object] = [after_position]
    if event_types is not None:
        types = list(dict.fromkeys(event_types))
        where += f" AND event_type IN ({', '.join('?' * len(types))})"
        params += types
    rows = await db.execute_fetchall(
        f"""
        SELECT
          (SELECT COUNT(*) FROM events WHERE {where}),
          (SELECT recorded_at FROM events WHERE {where} ORDER BY global_position LIMIT 1),
          (SELECT event_id FROM events WHERE {where} ORDER BY global_position DESC LIMIT 1),
          (SELECT MAX(global_position) FROM events WHERE {where})
        """,
        params * 4,
    )
    count, oldest, latest_id, latest_position = next(iter(rows))
    if not count:
        return Backlog(0, None, None, None)
    return Backlog(
        int(count),
        datetime.fromisoformat(oldest),
        UUID(latest_id),
        int(latest_position),
    )
