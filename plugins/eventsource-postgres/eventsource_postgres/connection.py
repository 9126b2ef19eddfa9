"""Opening pools from URLs, turning driver errors into messages that say what to do next."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from .errors import InvalidURLError, PostgresAuthenticationError, PostgresConnectionError

__all__ = ["create_pool", "redact", "skip_session_reset"]

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
