"""Ways in: a caller's connection in either transaction mode, URLs, the plugin registry."""

import contextlib
import sqlite3
from uuid import uuid4

import aiosqlite
import anyio
import pytest

from eventsource_core import StorageError, open_checkpoint_repository, open_event_store
from eventsource_core.testing import make_events
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

pytestmark = pytest.mark.anyio


def committed_position(path, name):
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT global_position FROM projection_checkpoints WHERE projection_name = ?",
            (name,),
        ).fetchone()
    return None if row is None else row[0]


async def test_default_connection_mode_is_committed_for_other_connections(tmp_path):
    path = tmp_path / "events.db"
    async with aiosqlite.connect(path) as db:  # sqlite3's implicit-transaction mode
        repo = SQLiteCheckpointRepository(db)
        await repo.save_position("P", 5, uuid4(), "T")
        await repo.update_checkpoint("Q", uuid4(), "T")
        assert not db.in_transaction
        assert committed_position(path, "P") == 5
        store = SQLiteEventStore(db)
        events = make_events(2)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        assert not db.in_transaction


async def test_a_callers_open_transaction_is_never_committed_by_us(tmp_path):
    path = tmp_path / "events.db"
    async with aiosqlite.connect(path) as db:
        repo = SQLiteCheckpointRepository(db)
        await repo.ensure_schema()
        await db.execute("CREATE TABLE notes (text TEXT)")
        await db.execute("INSERT INTO notes VALUES ('unfinished')")  # opens a transaction
        assert db.in_transaction
        with pytest.raises(StorageError, match="open transaction"):
            await repo.save_position("P", 1, uuid4(), "T")
        await db.rollback()
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT COUNT(*) FROM notes").fetchone() == (0,)
        assert check.execute("SELECT COUNT(*) FROM projection_checkpoints").fetchone() == (0,)


async def test_relative_url_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    async with SQLiteEventStore.open("sqlite:///rel/events.db") as store:
        assert await store.current_position() == 0
    assert (tmp_path / "rel" / "events.db").exists()


async def test_plugin_opens_both_on_one_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with (
        open_event_store("sqlite:///events.db") as store,
        open_checkpoint_repository("sqlite:///events.db?busy_timeout=2") as repo,
    ):
        assert isinstance(store, SQLiteEventStore)
        assert isinstance(repo, SQLiteCheckpointRepository)
        events = make_events(4)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.save_position("P", 1, stored[0].event_id, stored[0].event_type)
        metrics = await repo.get_lag_metrics("P")
        assert (metrics.events_behind, metrics.latest_position) == (3, 4)
    assert (tmp_path / "events.db").exists()


async def test_memory_url_shares_one_connection(tmp_path):
    async with SQLiteEventStore.open("sqlite:///:memory:") as store:
        repo = SQLiteCheckpointRepository(store.db)
        events = make_events(3)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.save_position("P", 3, stored[-1].event_id, stored[-1].event_type)
        metrics = await repo.get_lag_metrics("P")
        assert (metrics.events_behind, metrics.lag_seconds) == (0, 0.0)


async def test_lag_without_events_table_is_documented_placeholder(tmp_path):
    async with SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/cp.db") as repo:
        event_id = uuid4()
        await repo.save_position("P", 7, event_id, "T", events=7)
        metrics = await repo.get_lag_metrics("P")
        assert metrics.events_behind is None
        assert metrics.latest_event_id == str(event_id)
        assert (metrics.lag_seconds, metrics.events_processed) == (0.0, 7)


async def test_lag_from_a_store_in_another_file(tmp_path):
    async with (
        SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as store,
        SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/cp.db", event_store=store) as repo,
    ):
        events = make_events(5)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.save_position("P", 2, stored[1].event_id, stored[1].event_type)
        metrics = await repo.get_lag_metrics("P", event_types=[stored[4].event_type])
        assert metrics.events_behind == 2  # the withdrawals at positions 3 and 5
        assert metrics.latest_event_id == str(stored[4].event_id)
        assert metrics.lag_seconds >= 0.0


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.003, 0.01])
async def test_a_cancelled_append_is_all_or_nothing(tmp_path, delay):
    async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as store:
        events = make_events(3000)
        with anyio.move_on_after(delay):
            await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        assert not store.db.in_transaction
        stored = await store.current_position()
        assert stored in (0, 3000)
        more = make_events(2)
        await store.append(more[0].aggregate_id, more[0].aggregate_type, more, 0)
        assert await store.current_position() == stored + 2
