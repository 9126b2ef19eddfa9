"""The checkpoint port: where each projection stopped, and how far behind it is."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

import attrs

__all__ = [
    "CheckpointData",
    "CheckpointRepository",
    "LagMetrics",
    "QueueingCheckpointRepository",
    "validate_name",
]

MAX_NAME_LENGTH = 200


def validate_name(name: str) -> str:
    """Reject names that cannot identify a projection, before they reach any storage."""
    if not isinstance(name, str):
        raise TypeError(f"a projection name must be a str, not {type(name).__name__}")
    if not name.strip():
        raise ValueError("a projection name must not be empty; pass name='OrderProjection'")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"a projection name may have at most {MAX_NAME_LENGTH} characters "
            f"(got {len(name)}); use a shorter, stable name"
        )
    if "\x00" in name:
        raise ValueError("a projection name must not contain NUL characters")
    return name


@attrs.frozen(kw_only=True)
class CheckpointData:
    """One projection's saved progress."""

    projection_name: str
    last_event_id: UUID | None = None
    last_event_type: str | None = None
    last_processed_at: datetime | None = None
    events_processed: int = 0
    global_position: int | None = None


@attrs.frozen(kw_only=True)
class LagMetrics:
    """How far a projection trails the store.

    ``events_behind`` and ``latest_position`` go beyond the classic fields; they are ``None``
    when the repository cannot see the event store.
    """

    projection_name: str
    last_event_id: str | None
    latest_event_id: str | None
    lag_seconds: float
    events_processed: int
    last_processed_at: str | None
    events_behind: int | None = None
    latest_position: int | None = None


@runtime_checkable
class CheckpointRepository(Protocol):
    """Stores checkpoints. Writes are idempotent UPSERTs; positions never move backwards.

    ``projection_name`` and ``subscription_id`` name the same record.
    """

    async def get_checkpoint(self, projection_name: str) -> UUID | None:
        """The last processed event id, or ``None`` if the projection has no checkpoint."""
        ...

    async def update_checkpoint(
        self, projection_name: str, event_id: UUID, event_type: str
    ) -> None:
        """Record one processed event by id; counts it in ``events_processed``."""
        ...

    async def get_position(self, subscription_id: str) -> int | None:
        """The last processed global position, or ``None``."""
        ...

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None:
        """Record progress up to ``position``, adding ``events`` to ``events_processed``.

        A position lower than the saved one leaves the checkpoint as it is.
        """
        ...

    async def get_lag_metrics(
        self, projection_name: str, event_types: list[str] | None = None
    ) -> LagMetrics | None:
        """Lag against the newest relevant event, or ``None`` without a checkpoint."""
        ...

    async def reset_checkpoint(self, projection_name: str) -> None:
        """Forget the projection's progress so it rebuilds from the beginning."""
        ...

    async def get_all_checkpoints(self) -> list[CheckpointData]:
        """Every checkpoint, ordered by projection name."""
        ...


@runtime_checkable
class QueueingCheckpointRepository(CheckpointRepository, Protocol):
    """A repository that can send a save and let the caller go on while it is written.

    With ``AFTER_EACH_EVENT`` the subscription queues the save of one event, then confirms
    the save before it, then handles the next event: the database always has the next write
    waiting, and a crash repeats at most two events.

    The contract, which keeps positions and counts exact when a save fails:

    - saves of one name apply in the order they were queued;
    - a save queued before the outcome of the previous one (same name) was awaited applies
      only if that one did, and otherwise fails too;
    - callers await every result, in the order queued.
    """

    def queue_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> Awaitable[None]:
        """``save_position``, begun now if the backend can; await the result to confirm it.

        Raises what ``save_position`` raises, from the call or from the await.
        """
        ...
