"""Exactly-once projections: the read model and the checkpoint commit in one transaction.

A backend whose checkpoints live in a database offers ``transaction()``. A projection opts in
by defining ``handle_in_transaction(event, tx)`` and writing its read model through
``tx.connection``; the subscription then saves the checkpoint with ``tx.save_position`` before
the transaction commits, so a crash can never separate the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from .checkpoints import CheckpointRepository
from .events import DomainEvent

__all__ = [
    "CheckpointTransaction",
    "TransactionalCheckpointRepository",
    "TransactionalProjection",
]


@runtime_checkable
class CheckpointTransaction(Protocol):
    """An open database transaction that can also record a checkpoint."""

    #: The backend's native connection, inside the transaction (aiosqlite or asyncpg).
    connection: Any

    async def save_position(
        self,
        subscription_id: str,
        position: int,
        event_id: UUID,
        event_type: str,
        *,
        events: int = 1,
    ) -> None: ...


@runtime_checkable
class TransactionalCheckpointRepository(CheckpointRepository, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[CheckpointTransaction]:
        """Begin a transaction: commit on normal exit, roll back on an exception."""
        ...


@runtime_checkable
class TransactionalProjection(Protocol):
    def subscribed_to(self) -> Sequence[type[DomainEvent]] | None: ...

    async def handle_in_transaction(self, event: DomainEvent, tx: CheckpointTransaction) -> None:
        """Apply ``event`` to the read model through ``tx.connection``; do not commit."""
        ...
