"""One owner per subscription across processes.

A checkpoint repository that can coordinate processes offers ``claim(name)``. The subscription
holds the claim while it reads and handles events; the repository fences checkpoint writes, so a
process that lost its claim (paused, partitioned) cannot move the checkpoint any more.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

__all__ = ["Claim", "ClaimingCheckpointRepository"]


@runtime_checkable
class Claim(Protocol):
    """Ownership of one subscription name, with the fencing token it was granted under."""

    name: str
    token: int

    async def wait_lost(self) -> None:
        """Return when ownership is lost (the lease expired or was taken over)."""
        ...


@runtime_checkable
class ClaimingCheckpointRepository(Protocol):
    def claim(self, name: str) -> AbstractAsyncContextManager[Claim]:
        """Wait until this process owns ``name``; release it on exit."""
        ...
