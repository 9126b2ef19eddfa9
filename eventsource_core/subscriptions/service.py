"""A background task group that outlives the call that started it.

``SubscriptionManager.start()`` returns while subscriptions keep running, and several managers
may be stopped in any order. A task group entered in the caller's task would tie its lifetime to
the caller's cancel scopes, so the group lives in a service task of its own instead: an asyncio
task, or a trio system task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskGroup

__all__ = ["Service"]


class Service:
    """Owns one task group in a service task until :meth:`close`."""

    def __init__(self) -> None:
        self._group: TaskGroup | None = None
        self._ready = anyio.Event()
        self._closing = anyio.Event()
        self._closed = anyio.Event()
        self._task: Any = None  # keeps the asyncio task referenced while it runs

    async def open(self) -> None:
        if sniffio.current_async_library() == "trio":
            import trio.lowlevel

            trio.lowlevel.spawn_system_task(self._serve, name="eventsource-subscriptions")
        else:
            self._task = asyncio.get_running_loop().create_task(self._serve())
        try:
            await self._ready.wait()
        except BaseException:
            self._closing.set()  # cancelled while it started: it ends as soon as it is ready
            raise

    async def start(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        """Start ``func(task_status=...)`` in the group and wait until it reports started."""
        assert self._group is not None, "open() first"
        await self._group.start(func)

    def request_close(self) -> None:
        """End the service task once its tasks have finished, without waiting for that."""
        self._closing.set()

    async def close(self) -> None:
        """End the service task; call once the group's tasks have been asked to finish."""
        self._closing.set()
        with anyio.CancelScope(shield=True):
            await self._closed.wait()

    async def _serve(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                self._ready.set()
                await self._closing.wait()
        finally:
            self._closed.set()
