"""What a subscription has handled but not saved yet, and the saving of it.

A save may run behind the reader while it fetches the next page. The reader confirms it
before handling that page, so a crash still repeats at most one batch, and a failed save
surfaces in the reader, which alone decides what happens next.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskGroup

from ..checkpoints import CheckpointRepository
from ..store import StoredEvent

__all__ = ["Progress"]


class Progress:
    """The last handled event, how many were handled since the last save, and when that was."""

    def __init__(self, name: str, checkpoints: CheckpointRepository) -> None:
        self.name = name
        self.checkpoints = checkpoints
        self.last: StoredEvent | None = None
        self.pending = 0
        self.saved_at = time.monotonic()
        #: Set when the save running behind the reader has finished.
        self._saving: anyio.Event | None = None
        self._error: Exception | None = None

    def forget(self) -> None:
        """Start over from a checkpoint just read: nothing handled, nothing to save."""
        self.last, self.pending = None, 0

    def advance(self, stored: StoredEvent, count: int) -> None:
        self.last = stored
        self.pending += count

    def saved(self) -> None:
        """Record a save made elsewhere (in the projection's own transaction)."""
        self.pending, self.saved_at = 0, time.monotonic()

    def since_save(self) -> float:
        return time.monotonic() - self.saved_at

    async def save(self) -> None:
        """Save up to the last handled event, if any is unsaved, and wait for it."""
        await self.settle()
        last, pending = self.last, self.pending
        if last is None or pending == 0:
            return
        await self.checkpoints.save_position(
            self.name, last.global_position, last.event_id, last.event_type, events=pending
        )
        self.saved()

    async def save_behind(self, group: TaskGroup) -> None:
        """Start saving in ``group`` once the previous save behind has finished."""
        await self.settle()
        last, pending = self.last, self.pending
        if last is None or pending == 0:
            return
        self.saved()
        done = self._saving = anyio.Event()

        async def save() -> None:
            try:
                with anyio.CancelScope(shield=True):  # a started save always completes
                    await self.checkpoints.save_position(
                        self.name,
                        last.global_position,
                        last.event_id,
                        last.event_type,
                        events=pending,
                    )
            except Exception as exc:
                self.pending += pending  # still unsaved: the next save includes it
                self._error = exc
            finally:
                done.set()

        group.start_soon(save)

    async def settle(self) -> None:
        """Wait for the save running behind, and raise its error here, in the reader."""
        if self._saving is not None:
            await self._saving.wait()
            self._saving = None
        error, self._error = self._error, None
        if error is not None:
            raise error
