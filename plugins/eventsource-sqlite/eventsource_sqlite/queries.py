"""SQL shared by the store and the checkpoint repository, built once per shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from uuid import UUID

import aiosqlite

from eventsource_core import Backlog

__all__ = ["COLUMNS", "as_json", "backlog", "page_query"]

COLUMNS = (
    "global_position, event_id, event_type, aggregate_id, aggregate_type, aggregate_version, "
    "occurred_at, recorded_at, metadata, payload"
)
_ROW = (
    "json_array(global_position, event_id, event_type, aggregate_id, aggregate_type, "
    "aggregate_version, occurred_at, recorded_at, json(metadata), json(payload))"
)


def as_json(select: str) -> str:
    """Fold a SELECT of :data:`COLUMNS` into one JSON array text, in the SELECT's order.

    One string per page, parsed by one ``json.loads``, costs less than building a tuple per
    row and parsing each payload on its own; catch-up speed is mostly this.
    """
    return f"SELECT json_group_array({_ROW}) FROM ({select})"


#: Above this many types one scan in position order beats a merge of per-type index ranges.
MERGE_LIMIT = 8


@cache
def page_query(type_count: int | None) -> str:
    """The page SELECT for no filter (``None``) or ``type_count`` event types.

    One type walks the (event_type, global_position) index; a few types merge one bounded
    index range per type, so a page never costs more than ``limit`` rows per type.
    """
    if type_count is None:
        return as_json(
            f"SELECT {COLUMNS} FROM events WHERE global_position > ? "
            "ORDER BY global_position LIMIT ?"
        )
    if type_count == 1:
        return as_json(
            f"SELECT {COLUMNS} FROM events WHERE event_type = ? AND global_position > ? "
            "ORDER BY global_position LIMIT ?"
        )
    if type_count == 0 or type_count > MERGE_LIMIT:
        marks = ", ".join("?" * type_count)
        return as_json(
            f"SELECT {COLUMNS} FROM events WHERE event_type IN ({marks}) "
            "AND global_position > ? ORDER BY global_position LIMIT ?"
        )
    part = (
        f"SELECT * FROM (SELECT {COLUMNS} FROM events WHERE event_type = ? "
        "AND global_position > ? ORDER BY global_position LIMIT ?)"
    )
    merged = " UNION ALL ".join([part] * type_count) + " ORDER BY global_position LIMIT ?"
    return as_json(merged)


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
