"""One pooled connection kept for writes that follow each other closely.

A checkpoint saved after every event is one short statement, and taking a connection from
the pool and giving it back costs a good part of that statement again (about 200 µs of 700
in the benchmark). The repository keeps one connection between such writes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]

__all__ = ["HeldConnection"]


class HeldConnection:
    """Lends one connection of a pool to one write at a time, keeping it in between.

    It goes back to the pool after ``idle`` seconds without use, at once after a failed
    write, and on :meth:`release`. A write that finds it busy uses the pool as usual. It is
    never held in a pool of one connection, where it would starve every other user.
    """

    def __init__(self, idle: float = 0.25) -> None:
        self.idle = idle
        self._pool: asyncpg.Pool | None = None
        self._conn: asyncpg.Connection | None = None
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._expiring: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def use(self, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool | asyncpg.Connection]:
        """Yield the held connection (taking one first if needed), or ``pool`` if it is busy."""
        if self._busy or pool.get_max_size() < 2 or (self._pool not in (None, pool)):
            yield pool
            return
        self._busy = True
        self._cancel_timer()
        try:
            if self._conn is None:
                self._conn, self._pool = await pool.acquire(), pool
            try:
                yield self._conn
            except BaseException:
                await self._give_back()  # its state is unknown after a failure
                raise
        finally:
            self._busy = False
            if self._conn is not None:
                self._timer = asyncio.get_running_loop().call_later(self.idle, self._expire)

    async def release(self) -> None:
        """Give the connection back now (before the pool closes)."""
        self._cancel_timer()
        if self._expiring is not None:
            with contextlib.suppress(Exception):  # a pool closed under it: nothing to return
                await self._expiring
        if not self._busy:
            await self._give_back()

    def _expire(self) -> None:
        self._timer = None
        self._expiring = asyncio.get_running_loop().create_task(self._give_back_if_idle())
        self._expiring.add_done_callback(_seen)

    async def _give_back_if_idle(self) -> None:
        if not self._busy:  # a write may have begun since the timer fired
            await self._give_back()

    async def _give_back(self) -> None:
        conn, pool, self._conn, self._pool = self._conn, self._pool, None, None
        if conn is not None and pool is not None:
            await pool.release(conn)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _seen(task: asyncio.Task[None]) -> None:
    """Mark a failed give-back as seen; a pool closed meanwhile has nothing left to take."""
    if not task.cancelled():
        task.exception()
