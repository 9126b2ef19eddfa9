"""One owner per subscription: leases, fencing tokens, release and take-over on a real server.

The in-process tests below drive :class:`PostgreSQLClaims` directly; the multi-process test at
the end starts three real worker processes and ``kill -9``s the owner.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from uuid import uuid4

import anyio
import asyncpg
import pytest

from eventsource_core import OwnershipLostError
from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore

from .workers.spawn import Worker

pytestmark = pytest.mark.anyio

LEASE = 1.0  # seconds; short so the in-process tests expire leases quickly


async def _expire(pool: asyncpg.Pool, schema: str, name: str) -> None:
    """What a paused owner looks like from outside: its lease has run out."""
    await pool.execute(
        f"UPDATE {schema}.eventsource_claims SET expires_at = clock_timestamp() - interval '1 s' "
        "WHERE name = $1",
        name,
    )


async def _checkpoint(pool: asyncpg.Pool, schema: str, name: str) -> tuple[int, int] | None:
    row = await pool.fetchrow(
        f"SELECT global_position, events_processed FROM {schema}.projection_checkpoints "
        "WHERE projection_name = $1",
        name,
    )
    return None if row is None else (row[0], row[1])


async def _write_read_model_and_checkpoint(
    repo: PostgreSQLCheckpointRepository, schema: str
) -> None:
    async with repo.transaction() as tx:
        await tx.connection.execute(f"CREATE TABLE {schema}.read_model (x int)")
        await tx.save_position("P", 9, uuid4(), "Deposited", events=4)


async def test_claims_are_on_by_default_and_can_be_turned_off(pg_pool, pg_schema) -> None:
    on = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema)
    off = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    assert hasattr(on, "claim") and on.claims is not None
    assert on.claims.lease_seconds == 10.0
    assert not hasattr(off, "claim") and off.claims is None


async def test_a_second_claim_waits_until_the_first_is_released(pg_pool, pg_schema) -> None:
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=LEASE) as a,
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=LEASE) as b,
    ):
        assert a.claims is not None and b.claims is not None
        async with a.claim("P") as first:
            later = b.claims.claim("P")
            waiting = asyncio.ensure_future(later.__aenter__())
            await asyncio.sleep(3 * LEASE)  # several renewals: the lease stays with a
            assert not waiting.done()
            assert not first.lost
        second = await asyncio.wait_for(waiting, 10)
        try:
            assert second.token == first.token + 1
            assert b.claims.tokens == {"P": second.token}
            assert a.claims.tokens == {}
        finally:
            await later.__aexit__(None, None, None)
        assert b.claims.tokens == {}


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    pg_pool, pg_schema
) -> None:
    event = uuid4()
    async with (
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=3) as stale,
        PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=3) as fresh,
    ):
        async with stale.claim("P") as old:
            await stale.save_position("P", 5, event, "Deposited", events=5)
            await _expire(pg_pool, pg_schema, "P")  # as if the owner paused past its lease
            async with fresh.claim("P") as new:
                assert new.token == old.token + 1
                before = await _checkpoint(pg_pool, pg_schema, "P")
                with pytest.raises(OwnershipLostError, match="no longer owns"):
                    await stale.save_position("P", 9, event, "Deposited", events=4)
                with pytest.raises(OwnershipLostError):
                    await stale.update_checkpoint("P", uuid4(), "Deposited")
                with pytest.raises(OwnershipLostError):
                    await stale.reset_checkpoint("P")
                with pytest.raises(OwnershipLostError):
                    await _write_read_model_and_checkpoint(stale, pg_schema)
                assert await _checkpoint(pg_pool, pg_schema, "P") == before == (5, 5)
                assert (
                    await pg_pool.fetchval("SELECT to_regclass($1)", f"{pg_schema}.read_model")
                    is None
                )  # the stale transaction rolled back as a whole
                await fresh.save_position("P", 7, event, "Deposited", events=2)
                await asyncio.wait_for(old.wait_lost(), 10)  # its next renewal (every 1 s) fails
        assert await _checkpoint(pg_pool, pg_schema, "P") == (7, 7)


async def test_a_write_waits_for_the_claim_row_so_a_take_over_cannot_slip_between(
    pg_pool, pg_schema
) -> None:
    """The fence locks the claim row: a take-over that commits first makes the write fail."""
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, lease_seconds=30) as r:
        async with r.claim("P") as claim:
            async with pg_pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"UPDATE {pg_schema}.eventsource_claims SET token = token + 1, owner = 'x' "
                    "WHERE name = $1",
                    "P",
                )
                write = asyncio.ensure_future(r.save_position("P", 3, uuid4(), "Deposited"))
                await asyncio.sleep(0.3)
                assert not write.done()  # blocked on the row lock of the take-over
            with pytest.raises(OwnershipLostError, match=f"token {claim.token} is stale"):
                await asyncio.wait_for(write, 10)
        assert await _checkpoint(pg_pool, pg_schema, "P") is None


async def test_unclaimed_names_are_written_without_a_fence(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        await repo.save_position("Q", 2, uuid4(), "Deposited", events=2)
        assert await repo.get_position("Q") == 2
        await repo.reset_checkpoint("Q")
        assert await repo.get_position("Q") is None


async def test_a_released_claim_keeps_its_token_so_tokens_only_grow(pg_pool, pg_schema) -> None:
    async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
        tokens = []
        for _ in range(3):
            async with repo.claim("P") as claim:
                tokens.append(claim.token)
        assert tokens == [1, 2, 3]
        row = await pg_pool.fetchrow(
            f"SELECT owner, token FROM {pg_schema}.eventsource_claims WHERE name = 'P'"
        )
        assert row["owner"] is None and row["token"] == 3


# -- three real processes ------------------------------------------------------------------------

PROCESS_LEASE = 2.0
#: The documented take-over bound after the owner's last renewal: lease + standby poll.
TAKEOVER_BOUND = PROCESS_LEASE + min(1.0, PROCESS_LEASE / 4)
#: Generous slack for a loaded 2-core machine (process start-up is not in the measurement).
SLACK = 10.0
NAMES = ["Alpha", "Beta"]

HANDLED = """
    CREATE TABLE handled (
        seq bigserial PRIMARY KEY,
        subscription text NOT NULL,
        event_id uuid NOT NULL,
        pid integer NOT NULL,
        token bigint,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )"""


async def _owners(pool: asyncpg.Pool) -> dict[str, tuple[int, int]]:
    """Current owner pid and token per subscription name (only rows with an owner)."""
    rows = await pool.fetch("SELECT name, owner, token FROM eventsource_claims")
    return {
        r["name"]: (int(r["owner"].split(":")[1]), r["token"])
        for r in rows
        if r["owner"] is not None
    }


async def _append_until(store: PostgreSQLEventStore, stop: anyio.Event, ids: list) -> None:
    """The writer: small appends, continuously, until ``stop``."""
    rng = random.Random(4)
    while not stop.is_set():
        events = make_events(rng.randint(1, 3))
        head = events[0]
        await store.append(head.aggregate_id, head.aggregate_type, events, 0)
        ids.extend(e.event_id for e in events)
        await anyio.sleep(0.01)


async def _wait_until(check, within: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Poll ``check()`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await anyio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.timeout(300)
async def test_three_processes_never_handle_one_subscription_at_once_and_fail_over(
    pg_dsn: str, tmp_path: Path
) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=6)
    workers: list[Worker] = []
    try:
        async with PostgreSQLEventStore(pool) as store:
            await pool.execute(HANDLED)
            # Create our tables before three processes race to (they would also be fine).
            async with PostgreSQLCheckpointRepository(pool) as repo:
                assert repo.claims is not None
                async with repo.claim("warm-up"):
                    pass
            for i in range(3):
                args = [pg_dsn, str(PROCESS_LEASE), *NAMES]
                workers.append(Worker("owner", args, tmp_path / f"worker{i}.log"))
            for worker in workers:
                await worker.wait_for("ready")

            appended: list = []
            stop_writing = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_append_until, store, stop_writing, appended)

                async def handled_some(n: int = 100) -> bool:
                    counts = await pool.fetch(
                        "SELECT subscription, count(*) FROM handled GROUP BY subscription"
                    )
                    return len(counts) == len(NAMES) and all(c[1] >= n for c in counts)

                await _wait_until(handled_some, 60, "the first events to be handled")
                killed: list[int] = []
                takeovers: list[float] = []
                for _ in range(2):  # kill the owner of Alpha twice: 3 -> 2 -> 1 processes
                    before = await _owners(pool)
                    victim_pid, victim_token = before["Alpha"]
                    victim = next(w for w in workers if w.pid == victim_pid)
                    victim.kill()
                    killed.append(victim_pid)

                    async def taken_over(before=before, victim_pid=victim_pid) -> bool:  # type: ignore[no-untyped-def]
                        now = await _owners(pool)
                        return all(
                            name in now
                            and now[name][0] not in killed
                            and (before[name][0] != victim_pid or now[name][1] > before[name][1])
                            for name in NAMES
                        )

                    takeovers.append(
                        await _wait_until(taken_over, TAKEOVER_BOUND + SLACK, "a take-over")
                    )
                    after = await _owners(pool)
                    assert after["Alpha"][1] > victim_token
                    await _wait_until(handled_some, 60, "handling to go on")
                    mark = await pool.fetchval("SELECT max(seq) FROM handled")

                    async def new_owner_handles(mark=mark, victim_pid=victim_pid) -> bool:  # type: ignore[no-untyped-def]
                        return bool(
                            await pool.fetchval(
                                "SELECT count(*) FROM handled WHERE seq > $1 AND pid <> $2 "
                                "AND subscription = 'Alpha'",
                                mark,
                                victim_pid,
                            )
                        )

                    await _wait_until(new_owner_handles, 60, "the new owner to handle events")
                stop_writing.set()

            async def all_handled() -> bool:
                rows = await pool.fetch(
                    "SELECT subscription, count(DISTINCT event_id) FROM handled "
                    "GROUP BY subscription"
                )
                return len(rows) == len(NAMES) and all(r[1] == len(appended) for r in rows)

            await _wait_until(all_handled, 120, "every event to be handled")
            survivors = [w for w in workers if w.pid not in killed]
            for worker in survivors:
                assert await anyio.to_thread.run_sync(worker.stop) == 0, worker.output()
                assert "failed:" not in worker.output()

            rows = await pool.fetch(
                "SELECT subscription, event_id, pid, token FROM handled ORDER BY at, seq"
            )
    finally:
        for worker in workers:
            worker.kill()
        await pool.close()

    assert max(takeovers) <= TAKEOVER_BOUND + SLACK
    expected = set(appended)
    for name in NAMES:
        mine = [r for r in rows if r["subscription"] == name]
        assert {r["event_id"] for r in mine} == expected  # none lost
        # At most once again per kill: the killed owner's last event, not yet checkpointed.
        assert max(Counter(r["event_id"] for r in mine).values()) <= 2
        # In handling-time order, each claim's events form one run, claims follow each other
        # in token order, and each claim is one process's: two owners handling at once would
        # interleave their runs. (A process may own a name again later, under a new token.)
        runs: list[tuple[int, int]] = []
        for r in mine:
            if not runs or runs[-1] != (r["token"], r["pid"]):
                runs.append((r["token"], r["pid"]))
        tokens = [token for token, _ in runs]
        assert None not in tokens
        assert tokens == sorted(set(tokens)), f"owners of {name} interleaved: {runs}"
    print(f"take-over after kill -9: {', '.join(f'{t:.2f}s' for t in takeovers)}")
