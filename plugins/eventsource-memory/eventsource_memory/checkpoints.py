"""In-process checkpoints. Without awaits between read and write, each call is atomic."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

import anyio.lowlevel

from eventsource_core import CheckpointData, EventSource, LagMetrics
from eventsource_core.checkpoints import validate_name


class _Record:
    """Mutable on purpose: the hot path updates it in place instead of building new objects."""

    __slots__ = (
        "event_id",
        "event_type",
        "events_processed",
        "position",
        "processed_at",
    )

    # processed_at is a time.time() float: building a datetime per save would dominate the
    # AFTER_EACH_EVENT hot path, so readers convert it instead.

    def __init__(self) -> None:
        self.event_id: UUID | None = None
        self.event_type: str | None = None
        self.processed_at: float | None = None
        self.events_processed = 0
        self.position: int | None = None


class InMemoryCheckpointRepository:
    """Checkpoints in a dict. Give it ``event_store`` to get real lag metrics."""

    def __init__(self, event_store: EventSource | None = None) -> None:
        self.event_store = event_store
        self._records: dict[str, _Record] = {}

    def _record(self, name: str) -> _Record:
        record = self._records.get(name)
        if record is None:
            record = self._records[validate_name(name)] = _Record()
        return record

    async def get_checkpoint(self, projection_name: str) -> UUID | None:
        record = self._records.get(projection_name)
        return None if record is None else record.event_id

    async def update_checkpoint(
        self, projection_name: str, event_id: UUID, event_type: str
    ) -> None:
        await anyio.lowlevel.checkpoint()
        record = self._record(projection_name)
        if record.event_id != event_id:
            record.events_processed += 1
        record.event_id, record.event_type = event_id, event_type
        record.processed_at = time.time()

    async def get_position(self, subscription_id: str) -> int | None:
        record = self._records.get(subscription_id)
        return None if record is None else record.position

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        if position < 0 or events < 0:
            raise ValueError(f"position and events must be >= 0, got {position} and {events}")
        record = self._records.get(subscription_id) or self._record(subscription_id)
        current = record.position
        if current is not None and position <= current:
            if position < current:
                return
        else:
            record.events_processed += events
        record.position, record.event_id, record.event_type = position, event_id, event_type
        record.processed_at = time.time()

    async def reset_checkpoint(self, projection_name: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._records.pop(projection_name, None)

    async def get_all_checkpoints(self) -> list[CheckpointData]:
        await anyio.lowlevel.checkpoint()
        return [_data(name, self._records[name]) for name in sorted(self._records)]

    async def get_lag_metrics(
        self, projection_name: str, event_types: list[str] | None = None
    ) -> LagMetrics | None:
        record = self._records.get(projection_name)
        if record is None:
            return None
        last_id = None if record.event_id is None else str(record.event_id)
        processed = _as_datetime(record.processed_at)
        processed_at = None if processed is None else processed.isoformat()
        if self.event_store is None:
            return LagMetrics(
                projection_name=projection_name,
                last_event_id=last_id,
                latest_event_id=last_id,
                lag_seconds=0.0,
                events_processed=record.events_processed,
                last_processed_at=processed_at,
            )
        backlog = await self.event_store.backlog(record.position or 0, event_types)
        lag = 0.0
        if backlog.oldest_recorded_at is not None:
            lag = max(0.0, (datetime.now(UTC) - backlog.oldest_recorded_at).total_seconds())
        return LagMetrics(
            projection_name=projection_name,
            last_event_id=last_id,
            latest_event_id=(
                str(backlog.latest_event_id) if backlog.latest_event_id is not None else last_id
            ),
            lag_seconds=lag,
            events_processed=record.events_processed,
            last_processed_at=processed_at,
            events_behind=backlog.events_behind,
            latest_position=backlog.latest_position,
        )


def _as_datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _data(name: str, record: _Record) -> CheckpointData:
    return CheckpointData(
        projection_name=name,
        last_event_id=record.event_id,
        last_event_type=record.event_type,
        last_processed_at=_as_datetime(record.processed_at),
        events_processed=record.events_processed,
        global_position=record.position,
    )
