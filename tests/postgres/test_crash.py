"""kill -9 a real subscriber process at random points; restart it from its checkpoint each time.

Afterwards no event is lost; with AFTER_EACH_EVENT a restart handles at most the one event it
had not saved again (so no event more than twice); with AFTER_BATCH at most one batch again;
and the exactly-once read model equals a clean single pass over the events.

The default size keeps CI fast. ``EVENTSOURCE_CRASH_EVENTS`` and ``EVENTSOURCE_CRASH_KILLS``
select the full run (``nox -s "crash(postgres)"`` uses 20,000 events and 25 kills);
``EVENTSOURCE_CRASH_SEED`` repeats a run.
"""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict
from pathlib import Path
from uuid import UUID

import anyio
import asyncpg
import pytest

from eventsource_core.testing import make_events
from eventsource_postgres import PostgreSQLEventStore

from .workers.crash import delta
from .workers.spawn import Worker

pytestmark = pytest.mark.anyio

EVENTS = int(os.environ.get("EVENTSOURCE_CRASH_EVENTS", "3000"))
KILLS = int(os.environ.get("EVENTSOURCE_CRASH_KILLS", "8"))
SEED = int(os.environ.get("EVENTSOURCE_CRASH_SEED", str(random.randrange(1 << 30))))
PER_APPEND = 50
BATCH = 25
#: Events kept out of reach of every target: a kill lands up to ~50 ms after its target.
MARGIN = 8 * BATCH


async def _checkpoint(pool: asyncpg.Pool, name: str) -> int:
    value = await pool.fetchval(
        "SELECT global_position FROM projection_checkpoints WHERE projection_name = $1", name
    )
    return int(value or 0)


async def _run_until(worker: Worker, pool: asyncpg.Pool, name: str, target: int) -> None:
    """Wait until the checkpoint passes ``target``, plus a random instant, then kill -9."""
    with anyio.fail_after(180):
        while await _checkpoint(pool, name) < target:
            exited = worker.proc.poll() is not None
            # It may have saved its last checkpoint between the read above and exiting.
            if exited and await _checkpoint(pool, name) < target:
                raise AssertionError(f"the worker exited early:\n{worker.output()[-3000:]}")
            await anyio.sleep(0.01)
    await anyio.sleep(random.random() * 0.05)  # land mid-batch, mid-transaction, mid-save
    worker.kill()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("mode", ["each", "batch", "exact"])
async def test_kill_9_at_random_points_loses_nothing(
    mode: str, pg_dsn: str, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-{mode}")
    print(f"crash test: {EVENTS} events, {KILLS} kills, seed {SEED}")
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    log = tmp_path / "handled.log"
    name = f"Crash_{mode}"
    try:
        async with PostgreSQLEventStore(pool) as store:
            await pool.execute(
                "CREATE TABLE balances (aggregate_id uuid PRIMARY KEY, balance bigint NOT NULL, "
                "applied integer NOT NULL)"
            )
            for _ in range(EVENTS // PER_APPEND):
                events = make_events(PER_APPEND)
                await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
            last = await store.current_position()
            stored = [s async for s in store.read_all()]
        kills = 0
        for run in range(KILLS):
            # Each run gets somewhere new before it dies: a random share of an even step of
            # what is left, so a kill that lands late still leaves events for the runs after it
            # (a target past the last event would let the worker finish instead of dying).
            reached = await _checkpoint(pool, name)
            step = max(1, (last - MARGIN - reached) // (KILLS - run))
            target = reached + rng.randint(1, step)
            args = [pg_dsn, name, mode, str(BATCH), str(log), str(last), str(run)]
            worker = Worker("crash", args, tmp_path / f"run{run}.out")
            await _run_until(worker, pool, name, target)
            kills += 1
        final = Worker(
            "crash",
            [pg_dsn, name, mode, str(BATCH), str(log), str(last), "final"],
            tmp_path / "final.out",
        )
        code = await anyio.to_thread.run_sync(final.wait, 600)
        assert code == 0, final.output()[-3000:]
        assert await _checkpoint(pool, name) == last
        balances = {r[0]: (r[1], r[2]) for r in await pool.fetch("SELECT * FROM balances")}
    finally:
        await pool.close()

    assert len(stored) == EVENTS
    if mode == "exact":
        clean: dict[UUID, tuple[int, int]] = defaultdict(lambda: (0, 0))
        for s in stored:
            balance, applied = clean[s.event.aggregate_id]
            clean[s.event.aggregate_id] = (balance + delta(s.event), applied + 1)
        assert balances == dict(clean)
        return

    position = {s.event.event_id: s.global_position for s in stored}
    runs: dict[str, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        run, event_id = line.split()
        runs[run].append(position[UUID(event_id)])
    handled = Counter(p for positions in runs.values() for p in positions)
    assert set(handled) == set(position.values())  # no event lost
    allowed_again = 1 if mode == "each" else BATCH
    order = [str(r) for r in range(kills)] + ["final"]
    previous_last = 0
    for run in order:
        positions = runs.get(run, [])
        assert positions == sorted(set(positions))  # in order, each once within a run
        if positions:
            again = [p for p in positions if p <= previous_last]
            assert len(again) <= allowed_again, (run, len(again))
            previous_last = positions[-1]
    if mode == "each":
        assert max(handled.values()) <= 2
    assert kills == KILLS
    print(f"{mode}: {kills} kills, {sum(handled.values())} handlings of {EVENTS} events")
