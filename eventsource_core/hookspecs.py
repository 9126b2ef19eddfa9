"""The hooks a plugin implements. Hooks only register things; the registered objects do the work.

pluggy calls hooks synchronously, so every hook receives a ``register`` callback and returns
nothing. Implement them with ``@eventsource_core.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from .checkpoints import CheckpointRepository
    from .store import EventStore
    from .subscriptions.config import SubscriptionConfig
    from .subscriptions.strategies import CheckpointPolicy

__all__ = [
    "CheckpointStoreFactory",
    "EventSourceFactory",
    "StrategyFactory",
    "hookimpl",
    "hookspec",
    "register_checkpoint_stores",
    "register_checkpoint_strategies",
    "register_event_sources",
]

PROJECT = "eventsource"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class CheckpointStoreFactory(Protocol):
    """Opens a checkpoint repository for a URL; ``async with`` owns its connection."""

    def __call__(
        self, url: str, **options: Any
    ) -> AbstractAsyncContextManager[CheckpointRepository]: ...


class EventSourceFactory(Protocol):
    """Opens an event store for a URL; ``async with`` owns its connection."""

    def __call__(self, url: str, **options: Any) -> AbstractAsyncContextManager[EventStore]: ...


StrategyFactory = Callable[["SubscriptionConfig"], "CheckpointPolicy"]


@hookspec
def register_checkpoint_stores(register: Callable[[str, CheckpointStoreFactory], None]) -> None:
    """Register checkpoint repositories by URL scheme.

    :param register: call ``register(scheme, factory)`` once per scheme, for example
        ``register("sqlite", SQLiteCheckpointRepository.open)``. ``factory(url, **options)``
        must return an async context manager that yields a
        :class:`~eventsource_core.CheckpointRepository` and closes what it opened on exit.
    :return: nothing; pluggy collects no result (``firstresult`` does not apply).

    Two plugins registering one scheme is an error that names both.

    .. versionadded:: 0.1
    """


@hookspec
def register_event_sources(register: Callable[[str, EventSourceFactory], None]) -> None:
    """Register event stores (the sources subscriptions read) by URL scheme.

    :param register: call ``register(scheme, factory)`` once per scheme.
        ``factory(url, **options)`` must return an async context manager that yields an
        :class:`~eventsource_core.EventStore`.
    :return: nothing (``firstresult`` does not apply).

    .. versionadded:: 0.1
    """


@hookspec
def register_checkpoint_strategies(register: Callable[[str, StrategyFactory], None]) -> None:
    """Register checkpoint strategies by name.

    :param register: call ``register(name, factory)``; ``factory(config)`` receives the
        subscription's :class:`~eventsource_core.subscriptions.SubscriptionConfig` and returns a
        fresh :class:`~eventsource_core.subscriptions.CheckpointPolicy` for one subscription.
        Names are case-insensitive; a subscription selects one with
        ``SubscriptionConfig(checkpoint_strategy="name")``.
    :return: nothing (``firstresult`` does not apply).

    The built-in ``after_each_event``, ``after_batch`` and ``periodic`` register through this
    hook too.

    .. versionadded:: 0.1
    """
