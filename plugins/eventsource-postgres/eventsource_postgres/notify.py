"""LISTEN on a dedicated connection and wake subscriptions; reconnect with backoff if it drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

__all__ = ["NotificationListener"]

log = logging.getLogger("eventsource_postgres.notify")


class NotificationListener:
    """Holds one pool connection in LISTEN from the first listener until :meth:`close`.

    A notification only wakes readers; they read the store themselves. After every (re)connect
    all listeners are woken once, because appends may have happened while nobody listened.
    The connection stays while listeners come and go, so short-lived subscriptions do not churn
    connections; :meth:`close` ends it.
    """

    HEALTH_CHECK_SECONDS = 5.0
    MAX_BACKOFF_SECONDS = 5.0

    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._alert = asyncio.Event()
        self.connected = asyncio.Event()
        self.reconnects = 0

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        if (self._task is None or self._task.done()) and not self._closing:
            self._task = asyncio.get_running_loop().create_task(
                self._listen_forever(), name=f"eventsource LISTEN {self._channel}"
            )

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners:
                self._alert.set()  # the loop gives the connection back when it sees this

        return remove

    async def close(self) -> None:
        """Stop listening and give the connection back; cancel only if that hangs."""
        self._closing = True
        self._listeners.clear()
        self._alert.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _on_notification(self, *_: Any) -> None:
        self.wake()

    def _wanted(self) -> bool:
        return bool(self._listeners) and not self._closing

    async def _listen_forever(self) -> None:
        """LISTEN while anyone listens. Stops by returning (never by cancellation), so the
        connection goes back to the pool in a clean state."""
        delay = 0.05
        while self._wanted():
            conn: asyncpg.Connection | None = None
            on_lost: Callable[[Any], None] | None = None
            failed = False
            try:
                conn = await self._pool.acquire()
                if not self._wanted():
                    continue
                alert = self._alert = asyncio.Event()
                on_lost = _setter(alert)
                conn.add_termination_listener(on_lost)
                await conn.add_listener(self._channel, self._on_notification)
                self.connected.set()
                delay = 0.05
                self.wake()
                while self._wanted():
                    if alert.is_set():
                        if conn.is_closed():
                            raise ConnectionError("the LISTEN connection was closed")
                        alert.clear()  # a listener left; the loop condition decides
                        continue
                    try:
                        await asyncio.wait_for(alert.wait(), self.HEALTH_CHECK_SECONDS)
                    except TimeoutError:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), 5.0)
            except Exception as exc:
                if not self._wanted():
                    return
                failed = True
                self.reconnects += 1
                log.warning(
                    "PostgreSQL LISTEN on %r failed (%s: %s); polling covers the gap, "
                    "reconnecting in %.2fs",
                    self._channel,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            finally:
                self.connected.clear()
                if conn is not None:
                    if on_lost is not None:
                        with contextlib.suppress(Exception):  # gone with a dead connection
                            conn.remove_termination_listener(on_lost)
                    await self._release(conn)
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.MAX_BACKOFF_SECONDS)

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            if not conn.is_closed():
                await asyncio.wait_for(
                    conn.remove_listener(self._channel, self._on_notification), 2.0
                )
            await self._pool.release(conn, timeout=2.0)
        except (Exception, asyncio.CancelledError) as exc:
            log.debug("dropping the LISTEN connection: %s", exc)
            with contextlib.suppress(Exception):
                conn.terminate()


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
