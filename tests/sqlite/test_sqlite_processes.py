"""Real processes on one SQLite file: a writer and a subscriber, and a subscriber that is
killed with SIGKILL again and again and restarted from its checkpoint.

The crash test's size comes from the environment, so CI runs a small one and
``nox -s "crash(sqlite)"`` the full one: ``EVENTSOURCE_CRASH_EVENTS`` (default 3000),
``EVENTSOURCE_CRASH_KILLS`` (default 10), ``EVENTSOURCE_CRASH_SEED`` (random by default).
"""

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from uuid import uuid4

import pytest

from eventsource_core.testing import make_events
from eventsource_core.testing.events import DEPOSITED, OPENED
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

CHILD = str(Path(__file__).with_name("children.py"))
EVENTS = int(os.environ.get("EVENTSOURCE_CRASH_EVENTS", "3000"))
KILLS = int(os.environ.get("EVENTSOURCE_CRASH_KILLS", "10"))
SEED = int(os.environ.get("EVENTSOURCE_CRASH_SEED", str(random.randrange(1 << 30))))
BATCH = 50


def child(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, CHILD, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> None:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"child failed ({process.returncode}):\n{err}"


def positions_by_id(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT event_id, global_position FROM events"))


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- cross-process --------------------------------------------------------------------------


def test_writers_and_a_subscriber_in_other_processes_share_one_file(tmp_path):
    db_path = tmp_path / "events.db"
    url = f"sqlite:///{db_path}"
    log = tmp_path / "followed.log"
    per_writer, writers = 600, 2
    total = per_writer * writers

    async def create() -> None:
        async with SQLiteEventStore.open(url), SQLiteCheckpointRepository.open(url):
            pass

    asyncio.run(create())
    follower = child("follow", url, "follower", log, total)
    time.sleep(0.3)  # let it start and go idle, so it must pick the events up live
    writing = [child("write", url, per_writer, 7) for _ in range(writers)]
    for process in writing:
        finish(process)
    finish(follower)

    by_id = positions_by_id(db_path)
    handled = [by_id[line] for line in read_lines(log)]
    assert handled == list(range(1, total + 1))  # each event once, in position order


# -- crash and restart ----------------------------------------------------------------------


def fill(url: str, count: int) -> None:
    async def run() -> None:
        async with (
            SQLiteEventStore.open(url) as store,
            SQLiteCheckpointRepository.open(url) as repo,
        ):
            await repo.db.execute_fetchall("CREATE TABLE seen (event_id TEXT PRIMARY KEY)")
            await repo.db.execute_fetchall(
                "CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)"
            )
            per_stream = 97
            for start in range(0, count, per_stream):
                events = make_events(min(per_stream, count - start), uuid4())
                await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)

    asyncio.run(run())


class LineCounter:
    """Counts the log's lines incrementally, so polling stays cheap as the log grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def count(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
            self.offset += len(data)
            self.lines += data.count(b"\n")
        return self.lines


def wait_for_lines(counter: LineCounter, target: int, process: subprocess.Popen) -> bool:
    """Wait until the log has ``target`` lines; False if the child ended first."""
    while process.poll() is None:
        if counter.count() >= target:
            return True
        time.sleep(0.001)
    return False


#: Events left unclaimed per remaining kill, so a kill that lands a little late still finds the
#: child running.
MARGIN = max(150, EVENTS // (4 * KILLS))


def run_with_kills(url: str, mode: str, log: Path, rng: random.Random) -> int:
    """Kill the child at random points after some progress, restart it; return the kills.

    Requiring a little progress first (two events, or one batch and one event) is what makes
    "each event at most twice" a fair claim: a process that dies before finishing even one
    save repeats the same work.
    """
    kills = 0
    counter = LineCounter(log)
    min_progress = 2 if mode == "after_each_event" else BATCH + 1
    while True:
        seen = counter.count()
        process = child("crash", url, mode, log, EVENTS, mode, BATCH)
        if kills < KILLS:
            if not wait_for_lines(counter, seen + 1, process):
                break
            start = int(read_lines(log)[seen].split()[1])
            left = KILLS - kills
            budget = (EVENTS - start - (min_progress + MARGIN) * left) // left
            target = seen + 1 + rng.randint(min_progress, max(min_progress, budget))
            if wait_for_lines(counter, target, process):
                time.sleep(rng.random() * 0.001)
                process.send_signal(signal.SIGKILL)
                process.communicate()  # reaps it and closes its pipes
                if process.returncode == -signal.SIGKILL:
                    kills += 1
                    continue
        finish(process, timeout=300)
        break
    return kills


def runs(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Split the log into (start checkpoint, event ids handled) per process run."""
    out: list[tuple[int, list[str]]] = []
    for line in lines:
        if line.startswith("start "):
            out.append((int(line.split()[1]), []))
        elif line != "done":
            out[-1][1].append(line)
    return out


@pytest.mark.parametrize("mode", ["after_each_event", "after_batch", "exactly_once"])
def test_sigkill_at_random_points_loses_nothing(tmp_path, mode):
    rng = random.Random(f"{SEED}-{mode}")
    db_path = tmp_path / "events.db"
    url = f"sqlite:///{db_path}"
    log = tmp_path / "handled.log"
    fill(url, EVENTS)
    kills = run_with_kills(url, mode, log, rng)
    assert kills == KILLS, f"only {kills} kills landed (seed {SEED})"

    by_id = positions_by_id(db_path)
    lines = read_lines(log)
    assert lines[-1] == "done"
    per_run = runs(lines)
    assert len(per_run) == KILLS + 1
    # AFTER_EACH_EVENT writes one event's checkpoint while it handles the next, so a kill
    # repeats at most those two; AFTER_BATCH repeats at most the batch being handled.
    allowed = 2 if mode == "after_each_event" else BATCH
    for index, (start, handled) in enumerate(per_run):
        positions = [by_id[event_id] for event_id in handled]
        # Each run resumes right after its checkpoint and skips nothing.
        assert positions == list(range(start + 1, start + 1 + len(positions))), (index, SEED)
        if index + 1 < len(per_run):
            next_start = per_run[index + 1][0]
            redone = [p for p in positions if p > next_start]
            assert len(redone) <= allowed, (index, len(redone), SEED)
            assert next_start >= start  # checkpoints never move backwards
    counts = Counter(by_id[line] for _, handled in per_run for line in handled)
    assert set(counts) == set(range(1, EVENTS + 1)), "an event was never handled"
    assert max(counts.values()) <= 2, (counts.most_common(3), SEED)

    with contextlib.closing(sqlite3.connect(db_path)) as db:
        position, processed = db.execute(
            "SELECT global_position, events_processed FROM projection_checkpoints "
            "WHERE projection_name = ?",
            (mode,),
        ).fetchone()
        assert position == EVENTS
        assert processed == EVENTS  # counts events, never a save or a retry twice
        if mode == "exactly_once":
            assert db.execute("SELECT COUNT(*) FROM seen").fetchone()[0] == EVENTS
            model = dict(db.execute("SELECT account, balance FROM balances"))
            assert model == single_pass(db)


def single_pass(db: sqlite3.Connection) -> dict[str, int]:
    """The read model a clean run builds, computed from the stored events directly."""
    model: dict[str, int] = {}
    for event_type, account, payload in db.execute(
        "SELECT event_type, aggregate_id, payload FROM events ORDER BY global_position"
    ):
        amount = json.loads(payload).get("amount", 0)
        if event_type == OPENED:
            model[account] = 0
        elif event_type == DEPOSITED:
            model[account] += amount
        else:
            model[account] -= amount
    return model
