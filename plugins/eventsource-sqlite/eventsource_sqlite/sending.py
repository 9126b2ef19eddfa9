"""Put a statement on a connection's thread now and wait for it later.

aiosqlite queues a statement when its coroutine first runs, and the caller then sleeps until
SQLite's thread answers. Running that coroutine one step by hand queues the statement at once
and hands back the future it would have waited on, so the caller can work in the meantime.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Generator, Iterable
from typing import Any, NamedTuple

import aiosqlite

from eventsource_core import StorageError

from .connection import storage_error

__all__ = ["Refusal", "Sent", "send"]


class Refusal(NamedTuple):
    """How a conditional write says it did not apply: the driver's error text, and ours."""

    driver_text: str
    message: str


class Sent:
    """A write on its way; await it for its rows, with driver errors already translated.

    ``queued`` says the statement is already on the connection's thread, so whatever is sent
    later runs after it. It may be awaited more than once.
    """

    __slots__ = ("_future", "_refusal", "_where", "delivered", "queued")

    def __init__(
        self,
        future: asyncio.Future[Any],
        where: str,
        *,
        queued: bool,
        refusal: Refusal | None = None,
    ) -> None:
        self._future = future
        self._where = where
        self._refusal = refusal
        self.queued = queued
        #: Whether an awaiter has been told the outcome.
        self.delivered = False

    def succeeded(self) -> bool:
        """Finished, and known to have applied."""
        future = self._future
        if not future.done() or future.cancelled() or future.exception() is not None:
            return False
        return future.result() is not False

    def resolve(self, applied: bool) -> None:
        """Settle a write that was not sent through :func:`send`, once its caller knows."""
        if not self._future.done():
            self._future.set_result(applied)
        self.delivered = True

    async def applied(self) -> bool:
        """Wait for the outcome without raising: False if it failed or was cancelled."""
        try:
            await asyncio.shield(self._future)
        except (Exception, asyncio.CancelledError):
            if not self._future.done():
                raise  # this waiter was cancelled, not the write
        return self.succeeded()

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self._future.__await__())
        except sqlite3.Error as exc:
            refusal = self._refusal
            if refusal is not None and refusal.driver_text in str(exc):
                raise StorageError(refusal.message) from exc
            raise storage_error(exc, self._where) from exc
        finally:
            self.delivered = True


def send(
    db: aiosqlite.Connection,
    sql: str,
    params: Iterable[Any],
    where: str,
    *,
    refusal: Refusal | None = None,
) -> Sent:
    """Queue ``sql`` on ``db``'s thread before returning; statements run in the order sent."""
    call = db.execute_fetchall(sql, params).__await__()
    try:
        waiting = call.send(None)
    except StopIteration as done:  # answered without waiting: nothing is in flight
        future = asyncio.get_running_loop().create_future()
        future.set_result(done.value)
        return Sent(future, where, queued=True, refusal=refusal)
    finally:
        # What is left of the coroutine only passes the future's result on; the future
        # itself is resolved by aiosqlite's thread whether or not the coroutine finishes.
        call.close()
    if not isinstance(waiting, asyncio.Future):
        raise RuntimeError(
            f"aiosqlite waited on {type(waiting).__name__}, not an asyncio future; this "
            "aiosqlite version is not supported by eventsource-sqlite, install a tested one"
        )
    waiting._asyncio_future_blocking = False  # it is awaited again, from Sent
    return Sent(waiting, where, queued=True, refusal=refusal)
