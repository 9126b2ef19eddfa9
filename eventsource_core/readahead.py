"""Fetching the next page of the log while the current one is decoded and handled.

A catching-up reader asks for page after page, and each request waits for the database. Once
a fetched page turns out full, the query for the one after it can start at once, so the
database works while the caller decodes and handles the page it has. Backends whose driver
runs on asyncio share this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from .store import StoredEvent

__all__ = ["ReadAhead", "after_full_page"]

Page = TypeVar("Page")
_Key = tuple[int, int, tuple[str, ...] | None]

#: Seconds :meth:`ReadAhead.close` waits for a running fetch before cancelling it.
CLOSE_TIMEOUT = 10.0


class ReadAhead(Generic[Page]):
    """Serves pages through ``fetch``, fetching the page after each full one early.

    ``fetch(after_position, limit, event_types)`` returns a page, decoded or not, and
    ``follows(page, limit)`` says where the next page starts, or ``None`` if this one is not
    full. Only a prefetched page that came back full is served: positions after a full page
    were already taken, so it is exactly what a fetch now would return. A short or failed
    prefetch is dropped and fetched again, where its error surfaces normally. A backend
    whose positions may become visible out of order must only call a page full when nothing
    below its end can still appear.

    Several readers may share a store, each at its own position, so up to ``keep`` early
    fetches are kept, one per (position, limit, types); beyond that the oldest is dropped.
    """

    def __init__(
        self,
        fetch: Callable[[int, int, Sequence[str] | None], Coroutine[Any, Any, Page]],
        follows: Callable[[Page, int], int | None],
        *,
        keep: int = 16,
    ) -> None:
        self._fetch = fetch
        self._follows = follows
        self._keep = keep
        self._early: dict[_Key, asyncio.Task[Page]] = {}
        self._closing = False

    async def fetch(
        self,
        after_position: int,
        limit: int,
        event_types: Sequence[str] | None = None,
        *,
        prefetched: bool = True,
    ) -> Page:
        """Fetch a page. ``prefetched=False`` neither uses nor starts background fetches: for
        a caller holding a lock that a background fetch would wait for."""
        types = None if event_types is None else tuple(event_types)
        key: _Key = (after_position, limit, types)
        page: Page | None = None
        early = self._early.pop(key, None)
        if early is not None and prefetched:
            try:
                page = await early
            except Exception:
                page = None
            if page is not None and self._follows(page, limit) is None:
                page = None
        if page is None:
            page = await self._fetch(after_position, limit, event_types)
        after_page = self._follows(page, limit)
        if prefetched and after_page is not None and not self._closing:
            self._start((after_page, limit, types))
            # Let the new fetch send its query now; otherwise it would not run before the
            # caller next waits, which may be when it asks for this very page.
            await asyncio.sleep(0)
        return page

    def reopen(self) -> None:
        """Allow background fetches again after :meth:`close`."""
        self._closing = False

    async def close(self) -> None:
        """Stop starting fetches and wait for those running, so the connection can close."""
        self._closing = True
        early, self._early = list(self._early.values()), {}
        if early:
            await asyncio.wait(early, timeout=CLOSE_TIMEOUT)
            for task in early:
                task.cancel()  # a no-op once it has finished

    def _start(self, key: _Key) -> None:
        if key in self._early:
            return
        while len(self._early) >= self._keep:
            del self._early[next(iter(self._early))]  # left to finish, unused
        after, limit, types = key
        coro = self._fetch(after, limit, None if types is None else list(types))
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_discard_result)  # an unused fetch's error is not news
        self._early[key] = task


def after_full_page(page: Sequence[StoredEvent], limit: int) -> int | None:
    """``follows`` for a store that fetches decoded pages: the last position of a full one."""
    return page[-1].global_position if len(page) == limit else None


def _discard_result(task: asyncio.Task[Any]) -> None:
    """Mark a fetch's error as seen, so asyncio does not report one that nobody awaited."""
    if not task.cancelled():
        task.exception()
