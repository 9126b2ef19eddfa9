"""Opening SQLite files from URLs, and the per-connection state every component shares.

aiosqlite runs one connection on one worker thread, so statements never interleave; but an open
transaction is a property of the connection. The :class:`Gate` makes sure a store and a
checkpoint repository on the same connection never run inside each other's transactions.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosqlite
import attrs

from eventsource_core import ConfigurationError, StorageError

from .errors import CorruptDatabaseError, DatabaseLocationError, ReadOnlyDatabaseError

__all__ = ["Gate", "OpenOptions", "connect", "gate_for", "open_options", "storage_error"]

MEMORY = ":memory:"
SYNCHRONOUS = ("off", "normal", "full", "extra")


class Gate:
    """One lock per connection, plus which schema components are known to be ready on it.

    Reads take the lock too: inside another task's open append they would otherwise see rows
    that may still roll back. The task that holds the lock for a transaction may read through
    it (a projection loading an aggregate) but may not start a second write.
    """

    __slots__ = ("__weakref__", "lock", "owner", "ready")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None
        self.ready: set[str] = set()

    def held_by_me(self) -> bool:
        return self.owner is not None and self.owner is asyncio.current_task()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Hold the lock for a read, unless this task holds it already for its transaction."""
        if self.held_by_me():
            yield
        else:
            async with self.lock:
                yield

    def refuse_nested_write(self, what: str) -> None:
        if self.held_by_me():
            raise StorageError(
                f"{what} was called inside an open transaction on the same connection; inside "
                "handle_in_transaction write through tx.connection and let the subscription "
                "save the checkpoint (or use a second connection for other writes)"
            )


_gates: weakref.WeakKeyDictionary[aiosqlite.Connection, Gate] = weakref.WeakKeyDictionary()


def gate_for(db: aiosqlite.Connection) -> Gate:
    gate = _gates.get(db)
    if gate is None:
        gate = _gates[db] = Gate()
    return gate


def path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///events.db`` is relative, ``sqlite:////abs/events.db`` absolute.

    ``sqlite:///:memory:`` is a private in-memory database. Query parameters become options.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"expected a sqlite:/// URL string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0].lower() != "sqlite":
        raise ConfigurationError(
            f"{url!r} is not a sqlite URL; write 'sqlite:///events.db' (relative) or "
            "'sqlite:////var/lib/app/events.db' (absolute)"
        )
    if parts.netloc:
        raise ConfigurationError(
            f"{url!r} names a host ({parts.netloc!r}); SQLite files are local: use three "
            "slashes, as in 'sqlite:///events.db' or 'sqlite:////abs/path/events.db'"
        )
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigurationError(
            f"{url!r} names no file; write 'sqlite:///events.db' or 'sqlite:///:memory:'"
        )
    return path, dict(parse_qsl(parts.query))


@attrs.frozen
class OpenOptions:
    """What ``open(url, **options)`` needs before it can connect."""

    path: str
    busy_timeout: float
    synchronous: str
    adopt: bool


URL_OPTIONS = ("busy_timeout", "synchronous", "adopt")


def open_options(url: str, options: dict[str, Any]) -> OpenOptions:
    """Take the connection options from ``options`` (keywords win) and the URL's query."""
    path, query = path_from_url(url)
    unknown = sorted(set(query) - set(URL_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"{url!r} has unknown option(s) {', '.join(unknown)}; the URL accepts "
            f"{', '.join(URL_OPTIONS)}"
        )
    busy = options.pop("busy_timeout", query.get("busy_timeout", 5.0))
    try:
        busy_timeout = float(busy)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"busy_timeout must be a number of seconds, got {busy!r}"
        ) from None
    adopt = options.pop("adopt", query.get("adopt", False))
    if isinstance(adopt, str):
        adopt = adopt.strip().lower() in {"1", "true", "yes", "on"}
    return OpenOptions(
        path=path,
        busy_timeout=busy_timeout,
        synchronous=str(options.pop("synchronous", query.get("synchronous", "normal"))),
        adopt=bool(adopt),
    )


def check_location(path: str) -> None:
    """Fail before SQLite creates or changes anything at ``path``."""
    if path == MEMORY:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise DatabaseLocationError(
            f"cannot open {path!r}: the directory {str(parent)!r} does not exist; create it "
            "first (the backend never creates directories) or fix the path"
        )
    if target.exists():
        if not target.is_file():
            raise DatabaseLocationError(
                f"cannot open {path!r}: it is not a regular file; point the URL at a database "
                "file or at a new file name"
            )
        if not os.access(target, os.R_OK | os.W_OK):
            raise ReadOnlyDatabaseError(
                f"cannot open {path!r}: this process may not read and write it; "
                "fix its permissions (for example chmod u+rw) or copy it somewhere writable"
            )
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise ReadOnlyDatabaseError(
            f"cannot create {path!r}: the directory {str(parent)!r} is not writable; "
            "choose a writable directory"
        )


async def connect(
    path: str, *, busy_timeout: float = 5.0, synchronous: str = "normal"
) -> aiosqlite.Connection:
    """Open ``path`` in autocommit mode; every transaction here is an explicit BEGIN."""
    check_location(path)
    if synchronous.lower() not in SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous={synchronous!r} is not a SQLite level; "
            f"use one of {', '.join(SYNCHRONOUS)}"
        )
    if busy_timeout < 0:
        raise ConfigurationError(f"busy_timeout must be >= 0 seconds, got {busy_timeout}")
    try:
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise storage_error(exc, path) from exc
    try:
        await db.execute_fetchall(f"PRAGMA synchronous={synchronous.upper()}")
    except BaseException as exc:
        await db.close()
        if isinstance(exc, sqlite3.Error):
            raise storage_error(exc, repr(path)) from exc
        raise
    return db


def storage_error(exc: sqlite3.Error, where: str = "the database") -> StorageError:
    """Translate a driver error into the specific class a caller can act on."""
    text = str(exc).lower()
    if "malformed json" in text:
        return CorruptDatabaseError(
            f"{where} holds an event whose metadata or payload is not JSON ({exc}); it was "
            "written by something other than this backend. Fix or remove that row"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return CorruptDatabaseError(
            f"{where} is not a usable SQLite database ({exc}); it was left as it is. "
            "Point the URL at the right file, or restore it from a backup"
        )
    if "readonly" in text or "read-only" in text:
        return ReadOnlyDatabaseError(
            f"{where} is read-only ({exc}); nothing was written. Make the file and its "
            "directory writable for this process"
        )
    if "unable to open" in text:
        return DatabaseLocationError(
            f"cannot open {where} ({exc}); check that the directory exists and is writable"
        )
    if "locked" in text or "busy" in text:
        return StorageError(
            f"{where} stayed locked by another connection ({exc}); nothing was written. "
            "Retry, or raise busy_timeout if long transactions are expected"
        )
    return StorageError(f"SQLite refused an operation on {where}: {exc}")
