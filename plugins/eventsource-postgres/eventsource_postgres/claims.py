"""One owner per subscription name across processes and hosts: leases with fencing tokens.

Each name has one row in ``eventsource_claims``. A process takes the row when it is free or its
lease has expired, and the take-over increments ``token``; the owner renews the lease every
``lease_seconds / 3``. Every checkpoint write of an owner carries its token, so once another
process took over, the old owner's writes fail with :class:`OwnershipLostError` and change
nothing. A take-over also moves the ``fence`` of the name's checkpoint row (a trigger, schema
migration 3), so an owner's usual checkpoint save only compares the row's fence with its token;
the first save of a name, and the other writes, check the claim row itself (:meth:`fenced`).

Timing (``L`` = ``lease_seconds``): the owner gives up locally ``0.8 * L`` after the last
renewal it *sent* that succeeded, so it stops handling before the server-side lease (measured
from when the server ran that renewal, later than the send) runs out. A standby takes over at
most ``L + poll`` after the owner's last renewal; ``poll`` is ``min(1 s, L / 4)``. A clean exit
releases the row, so a standby takes over within ``poll``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]

from eventsource_core import ConfigurationError, OwnershipLostError, StorageError

from .outages import is_unavailable
from .schema import Names

__all__ = ["DEFAULT_LEASE_SECONDS", "PostgreSQLClaim", "PostgreSQLClaims"]

log = logging.getLogger("eventsource_postgres.claims")

DEFAULT_LEASE_SECONDS = 10.0
#: Fraction of the lease after the last successful renewal (from its send) that the owner
#: trusts; the remaining 20% covers stopping the handler before a standby may take over.
LOCAL_SHARE = 0.8
_MAX_RETRY_DELAY = 5.0
_PARAM = re.compile(r"\$(\d+)")
_VALUES = re.compile(r"\bVALUES\s*\((?P<values>.*?)\)\s*ON CONFLICT", re.DOTALL | re.IGNORECASE)
_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+.*\bWHERE\b", re.DOTALL | re.IGNORECASE)


class PostgreSQLClaim:
    """Ownership of ``name`` under fencing ``token``; ``wait_lost`` returns once it is gone."""

    def __init__(self, name: str, token: int, owner: str) -> None:
        self.name = name
        self.token = token
        self.owner = owner
        self._lost = asyncio.Event()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def _mark_lost(self) -> None:
        self._lost.set()


class PostgreSQLClaims:
    """Leases on subscription names for one checkpoint repository, and its write fence.

    ``tokens`` maps each name this repository currently holds to its token; the repository
    passes its checkpoint writes through :meth:`execute`, which fences those names.
    """

    def __init__(
        self,
        pool: Callable[[], Awaitable[asyncpg.Pool]],
        names: Names,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if isinstance(lease_seconds, bool) or not lease_seconds > 0.2:
            raise ConfigurationError(
                f"lease_seconds must be a number of seconds above 0.2, got {lease_seconds!r}; "
                f"the default is {DEFAULT_LEASE_SECONDS}"
            )
        self._pool = pool
        self.names = names
        self.lease_seconds = float(lease_seconds)
        self.renew_every = self.lease_seconds / 3
        self.poll_seconds = min(1.0, self.lease_seconds / 4)
        self.tokens: dict[str, int] = {}
        self.table = t = names.claims
        self._fenced: dict[str, str] = {}
        # Take the row if it is free or expired; the token only ever grows (rows are kept).
        self._sql_acquire = f"""
            WITH taken AS (
                INSERT INTO {t} AS c (name, owner, token, expires_at)
                VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
                ON CONFLICT (name) DO UPDATE
                   SET owner = EXCLUDED.owner, token = c.token + 1,
                       expires_at = EXCLUDED.expires_at
                 WHERE c.owner IS NULL OR c.expires_at < clock_timestamp()
                RETURNING c.token)
            SELECT (SELECT token FROM taken),
                   (SELECT extract(epoch FROM expires_at - clock_timestamp())::float8
                      FROM {t} WHERE name = $1)"""
        self._sql_renew = (
            f"UPDATE {t} SET expires_at = clock_timestamp() + make_interval(secs => $4) "
            "WHERE name = $1 AND owner = $2 AND token = $3 RETURNING token"
        )
        self._sql_release = (
            f"UPDATE {t} SET owner = NULL, expires_at = 'epoch' "
            "WHERE name = $1 AND owner = $2 AND token = $3"
        )

    # -- ownership -----------------------------------------------------------------------------

    @asynccontextmanager
    async def claim(self, name: str) -> AsyncIterator[PostgreSQLClaim]:
        """Wait until this process owns ``name``; renew while inside; release on exit."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        claim, deadline = await self._acquire(name, owner)
        self.tokens[name] = claim.token
        done = asyncio.Event()
        renewer = asyncio.get_running_loop().create_task(
            self._renew(claim, deadline, done), name=f"eventsource claim {name}"
        )
        try:
            yield claim
        finally:
            # Shielded, and the renewer is asked to stop rather than cancelled: cancelling a
            # statement or a connect half-way leaves the driver with errors nobody retrieves.
            with anyio.CancelScope(shield=True):
                done.set()
                await asyncio.wait([renewer])
                if self.tokens.get(name) == claim.token:
                    del self.tokens[name]
                claim._mark_lost()
                await self._release(claim)

    async def _acquire(self, name: str, owner: str) -> tuple[PostgreSQLClaim, float]:
        failures = 0
        while True:
            sent = time.monotonic()
            try:
                # Shielded (see claim()); a claim won while the caller was cancelled is
                # released by claim()'s exit.
                with anyio.CancelScope(shield=True), anyio.fail_after(self.lease_seconds):
                    pool = await self._pool()
                    token, remaining = await pool.fetchrow(
                        self._sql_acquire, name, owner, self.lease_seconds
                    )
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                failures += 1
                delay = min(_MAX_RETRY_DELAY, 0.2 * 2 ** (failures - 1))
                log.warning(
                    "cannot reach PostgreSQL to claim %r (%s); retrying in %.1fs",
                    name,
                    exc or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if token is not None:
                log.info("claimed %r with token %d as %s", name, token, owner)
                return PostgreSQLClaim(name, int(token), owner), self._local_deadline(sent)
            failures = 0
            wait = self.poll_seconds if remaining is None else max(0.0, remaining) + 0.01
            await asyncio.sleep(min(wait, self.poll_seconds))

    def _local_deadline(self, sent: float) -> float:
        return sent + LOCAL_SHARE * self.lease_seconds

    async def _renew(self, claim: PostgreSQLClaim, deadline: float, done: asyncio.Event) -> None:
        """Extend the lease until ``done``, or until a renewal fails or cannot be confirmed
        before ``deadline``."""
        next_renewal = time.monotonic() + self.renew_every
        while True:
            with anyio.move_on_after(max(0.0, next_renewal - time.monotonic())):
                await done.wait()
            if done.is_set():
                return
            sent = time.monotonic()
            try:
                with anyio.fail_after(max(0.01, deadline - sent)):
                    pool = await self._pool()
                    token = await pool.fetchval(
                        self._sql_renew, claim.name, claim.owner, claim.token, self.lease_seconds
                    )
            except Exception as exc:
                if not is_unavailable(exc) and not isinstance(exc, TimeoutError):
                    log.error("renewing the claim on %r failed: %s", claim.name, exc)
                    claim._mark_lost()
                    return
                if time.monotonic() >= deadline:
                    log.warning(
                        "lost the claim on %r: PostgreSQL did not confirm a renewal within "
                        "the lease (%s); a standby may take over",
                        claim.name,
                        exc or type(exc).__name__,
                    )
                    claim._mark_lost()
                    return
                next_renewal = min(deadline, time.monotonic() + 0.25)
                continue
            if token is None:
                log.warning(
                    "lost the claim on %r (token %d): another process took it over",
                    claim.name,
                    claim.token,
                )
                claim._mark_lost()
                return
            deadline = self._local_deadline(sent)
            next_renewal = sent + self.renew_every

    async def _release(self, claim: PostgreSQLClaim) -> None:
        try:
            with anyio.fail_after(self.poll_seconds + 1.0):
                pool = await self._pool()
                await pool.execute(self._sql_release, claim.name, claim.owner, claim.token)
        except Exception as exc:
            if not is_unavailable(exc) and not isinstance(exc, TimeoutError):
                raise
            log.warning(
                "could not release the claim on %r (%s); a standby takes over when the lease "
                "expires",
                claim.name,
                exc or type(exc).__name__,
            )

    # -- the write fence -----------------------------------------------------------------------

    async def execute(
        self, executor: asyncpg.Pool | asyncpg.Connection, sql: str, name: str, *args: Any
    ) -> None:
        """Run a checkpoint write whose first parameter is ``name``; fenced if we hold it."""
        token = self.tokens.get(name)
        if token is None:
            await executor.execute(sql, name, *args)
            return
        current = await executor.fetchval(self.fenced(sql), name, *args, token)
        if current != token:
            raise OwnershipLostError(
                f"this process no longer owns subscription {name!r} (its claim token {token} "
                f"is stale; the current token is {current}); the checkpoint was not changed. "
                "Another process has taken over; stop handling events for it, or stand by "
                "and claim it again"
            )

    def fenced(self, sql: str) -> str:
        """``sql`` made to write only while the claim row holds the token (the last parameter).

        The claim row is locked ``FOR SHARE`` in the same statement, so a take-over waits for
        the write to commit, or the write sees the new token and changes nothing. The
        statement returns the token found.
        """
        cached = self._fenced.get(sql)
        if cached is not None:
            return cached
        token = f"${max((int(n) for n in _PARAM.findall(sql)), default=1) + 1}"
        fence = (
            f"WITH fence AS MATERIALIZED (SELECT token FROM {self.table} "
            "WHERE name = $1 FOR SHARE), "
        )
        found = "SELECT (SELECT token FROM fence)"
        allowed = f"EXISTS (SELECT 1 FROM fence WHERE token = {token})"
        if (match := _VALUES.search(sql)) is not None:
            guarded = (
                sql[: match.start()]
                + f"SELECT {match['values']} WHERE {allowed} ON CONFLICT"
                + sql[match.end() :]
            )
        elif _DELETE.match(sql):
            guarded = _DELETE.sub(lambda m: f"{m.group(0)} {allowed} AND", sql, count=1)
        else:
            raise StorageError(
                "cannot fence this checkpoint statement (expected INSERT ... VALUES (...) "
                "ON CONFLICT or DELETE ... WHERE); this is a bug in eventsource-postgres"
            )
        statement = f"{fence}written AS ({guarded}) {found}"
        self._fenced[sql] = statement
        return statement
