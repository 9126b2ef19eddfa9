"""Opening pools from URLs (driver errors become messages that say what to do next), and the
pool lifecycle the store and the checkpoint repository share."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from eventsource_core import StorageError

from .errors import InvalidURLError, PostgresAuthenticationError, PostgresConnectionError
from .schema import Names, ensure_schema

__all__ = ["PoolOwner", "create_pool", "redact", "skip_session_reset"]

SCHEMES = ("postgresql", "postgres")


async def skip_session_reset(connection: asyncpg.Connection) -> None:
    """A pool ``reset`` that sends nothing: asyncpg's default costs a round trip per release.

    Safe because this package leaves no session state behind (no session settings, session
    advisory locks, open cursors or lingering LISTEN). Code that runs on ``tx.connection`` must
    then use ``SET LOCAL``, not ``SET``.
    """


def redact(url: str) -> str:
    """The URL without its password, safe for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable URL>"


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = 10.0,
    **options: Any,
) -> asyncpg.Pool:
    """A pool for ``url``; fails at once with a specific error if the first connection fails."""
    shown = redact(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise InvalidURLError(
            f"{shown!r} is not a PostgreSQL URL; write postgresql://user:password@host:5432/db"
        )
    try:
        options.setdefault("reset", skip_session_reset)
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, timeout=connect_timeout, **options
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise PostgresAuthenticationError(
            f"PostgreSQL at {shown} rejected the credentials ({exc}); check the user name and "
            "password in the URL, and that pg_hba.conf allows this user from this host"
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise PostgresConnectionError(
            f"{exc} at {shown}; create the database first (CREATE DATABASE ...) or fix its name "
            "in the URL"
        ) from exc
    except (asyncpg.ClientConfigurationError, ValueError) as exc:
        raise InvalidURLError(
            f"cannot use the PostgreSQL URL {shown}: {exc}; "
            "write postgresql://user:password@host:5432/database"
        ) from exc
    except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as exc:
        raise PostgresConnectionError(
            f"cannot connect to PostgreSQL at {shown}: {exc}. Check that the server runs and "
            "that host and port in the URL are right"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise PostgresConnectionError(
            f"PostgreSQL at {shown} refused the connection: {exc}"
        ) from exc
    assert pool is not None
    return pool


class PoolOwner:
    """A pool given by the caller (left open) or opened from a URL (closed on exit), with the
    schema created or migrated once before first use.

    Subclasses pass their own options to ``__init__`` and list them in ``OWN_OPTIONS``, so
    :meth:`from_url` hands everything else to ``asyncpg.create_pool``.
    """

    #: ``from_url`` options that belong to the subclass rather than to the pool.
    OWN_OPTIONS: ClassVar[tuple[str, ...]] = ("schema",)

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        url: str | None,
        pool_options: dict[str, Any] | None,
        schema: str,
    ) -> None:
        if pool is None and url is None:
            raise StorageError(f"{type(self).__name__} needs an asyncpg pool or a url")
        self._pool = pool
        self._owns_pool = pool is None
        self._url = url
        self._pool_options = pool_options or {}
        self.names = Names(schema)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """An object that opens (and on exit closes) its own pool; use it with ``async with``.

        Options named in ``OWN_OPTIONS`` go to the object, the rest (``min_size``,
        ``max_size``, ...) to ``asyncpg.create_pool``.
        """
        mine = {k: options.pop(k) for k in cls.OWN_OPTIONS if k in options}
        return cls(url=url, pool_options=options, **mine)

    @classmethod
    def open(cls, url: str, **options: Any) -> Self:
        """The same as :meth:`from_url`, named like the other backends' openers."""
        return cls.from_url(url, **options)

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def initialize(self) -> None:
        """Open the pool (if we own it) and create or migrate the schema."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            if self._pool is None:
                assert self._url is not None
                self._pool = await create_pool(self._url, **self._pool_options)
            async with self._pool.acquire() as conn:
                await ensure_schema(conn, self.names)
            self._ready = True

    async def close(self) -> None:
        """Close the pool if this object opened it; a borrowed pool stays open."""
        if self._owns_pool and self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._ready = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            name = type(self).__name__
            raise StorageError(
                f"the {name} is not open; use 'async with {name}.from_url(url)' or pass an "
                "asyncpg pool"
            )
        return self._pool

    async def _open_pool(self) -> asyncpg.Pool:
        if not self._ready:
            await self.initialize()
        return self.pool
