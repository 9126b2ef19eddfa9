"""Which driver errors mean "the server is unreachable right now", and their core translation.

Only connection-level failures count: the server is down, restarting, refusing connections or
the network dropped. Bad SQL, constraint violations and bad data never do, so a subscription
waits out an outage but still stops on a real bug.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]

from eventsource_core import StorageUnavailableError

__all__ = ["is_unavailable", "translate_outages", "unavailable_error"]

P = ParamSpec("P")
T = TypeVar("T")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,  # connecting or a pool acquire timed out
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: the connection broke
    asyncpg.AdminShutdownError,  # 57P01: the server is shutting down
    asyncpg.CrashShutdownError,  # 57P02: the server crashed
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting or recovering
    asyncpg.TooManyConnectionsError,  # 53300: wait for a free slot
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached now (retrying later may work)."""
    if isinstance(exc, (StorageUnavailableError, *_UNAVAILABLE)):
        return True
    # asyncpg reports a connection closed under it as a plain InterfaceError.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def unavailable_error(exc: BaseException, doing: str) -> StorageUnavailableError:
    """The core error for an outage met while ``doing`` something."""
    if isinstance(exc, StorageUnavailableError):
        return exc
    detail = str(exc) or type(exc).__name__
    return StorageUnavailableError(
        f"PostgreSQL is unreachable while {doing} ({detail}). Subscriptions retry with back-off "
        "and resume from their checkpoints; check that the server runs if this persists"
    )


def translate_outages(
    doing: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate an async method so outages surface as :class:`StorageUnavailableError`."""

    def decorate(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                if is_unavailable(exc) and not isinstance(exc, StorageUnavailableError):
                    raise unavailable_error(exc, doing) from exc
                raise

        return wrapper

    return decorate
