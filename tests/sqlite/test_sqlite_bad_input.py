"""Files the backend must refuse, names it must store safely: each with a clear error, and the
file byte-for-byte as it was (checked by hash)."""

import contextlib
import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path
from uuid import uuid4

import aiosqlite
import pytest

from eventsource_core import SchemaError, StorageError
from eventsource_core.testing import make_events
from eventsource_sqlite import (
    CorruptDatabaseError,
    DatabaseLocationError,
    ForeignDatabaseError,
    NewerSchemaError,
    ReadOnlyDatabaseError,
    SQLiteCheckpointRepository,
    SQLiteEventStore,
)

pytestmark = pytest.mark.anyio

OPENERS = [SQLiteEventStore.open, SQLiteCheckpointRepository.open]
OPENER_IDS = ["store", "checkpoints"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def make_our_database(path: Path) -> None:
    async with (
        SQLiteEventStore.open(f"sqlite:///{path}") as store,
        SQLiteCheckpointRepository.open(f"sqlite:///{path}") as repo,
    ):
        events = make_events(3)
        stored = await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.save_position("P", 3, stored[-1].event_id, stored[-1].event_type)


@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_missing_directory_is_reported_and_not_created(tmp_path, opener):
    target = tmp_path / "no" / "such" / "dir" / "events.db"
    with pytest.raises(DatabaseLocationError, match="does not exist; create it"):
        async with opener(f"sqlite:///{target}"):
            pass
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_a_directory_is_not_a_database_file(tmp_path, opener):
    with pytest.raises(DatabaseLocationError, match="not a regular file"):
        async with opener(f"sqlite:///{tmp_path}"):
            pass


@contextlib.contextmanager
def read_only(path: Path):
    """chmod a-w; as root (who ignores modes) make the file immutable instead, if possible."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_read_only_file_is_refused_and_left_untouched(tmp_path, opener):
    path = tmp_path / "events.db"
    await make_our_database(path)
    before, files = digest(path), listing(tmp_path)
    with read_only(path):
        with pytest.raises(ReadOnlyDatabaseError, match="permissions"):
            async with opener(f"sqlite:///{path}"):
                pass
        assert digest(path) == before
        assert listing(tmp_path) == files


GARBAGE = [
    pytest.param(b"this is not a database at all\n" * 200, id="text"),
    pytest.param(os.urandom(8192), id="random-bytes"),
    pytest.param(b"SQLite format 3\x00" + b"\xff" * 4080, id="bad-header"),
]


@pytest.mark.parametrize("content", GARBAGE)
@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_corrupt_file_is_refused_and_left_untouched(tmp_path, opener, content):
    path = tmp_path / "events.db"
    path.write_bytes(content)
    with pytest.raises(CorruptDatabaseError, match="not a usable SQLite database"):
        async with opener(f"sqlite:///{path}"):
            pass
    assert path.read_bytes() == content
    assert listing(tmp_path) == ["events.db"]


async def test_corrupt_file_through_a_caller_connection(tmp_path):
    path = tmp_path / "events.db"
    content = os.urandom(4096)
    path.write_bytes(content)
    async with aiosqlite.connect(path) as db:
        store = SQLiteEventStore(db)
        with pytest.raises(CorruptDatabaseError):
            await store.current_position()
        repo = SQLiteCheckpointRepository(db)
        with pytest.raises(CorruptDatabaseError):
            await repo.get_position("P")
    assert path.read_bytes() == content


def foreign_database(path: Path, *statements: str) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()
    return digest(path)


@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_foreign_events_table_is_never_touched(tmp_path, opener):
    path = tmp_path / "app.db"
    before = foreign_database(
        path,
        "CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT, starts_at TEXT)",
        "INSERT INTO events (title, starts_at) VALUES ('launch', '2026-01-01')",
    )
    with pytest.raises(ForeignDatabaseError, match=r"another application|did not create"):
        async with opener(f"sqlite:///{path}"):
            pass
    assert digest(path) == before


async def test_our_table_name_taken_is_refused_even_when_adopting(tmp_path):
    path = tmp_path / "app.db"
    before = foreign_database(
        path, "CREATE TABLE projection_checkpoints (name TEXT, offset_value INTEGER)"
    )
    with pytest.raises(ForeignDatabaseError, match=r"'projection_checkpoints'.*did not create"):
        async with SQLiteCheckpointRepository.open(f"sqlite:///{path}?adopt=true"):
            pass
    assert digest(path) == before


async def test_foreign_schema_table_name_is_refused(tmp_path):
    path = tmp_path / "app.db"
    before = foreign_database(path, "CREATE TABLE eventsource_schema (k TEXT, v TEXT)")
    with pytest.raises(ForeignDatabaseError, match="eventsource_schema"):
        async with SQLiteEventStore.open(f"sqlite:///{path}"):
            pass
    assert digest(path) == before


async def test_other_applications_database_needs_adopt(tmp_path):
    path = tmp_path / "app.db"
    before = foreign_database(
        path,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
        "INSERT INTO users (email) VALUES ('ada@example.org')",
    )
    with pytest.raises(ForeignDatabaseError, match="adopt=True"):
        async with SQLiteEventStore.open(f"sqlite:///{path}"):
            pass
    assert digest(path) == before

    async with SQLiteEventStore.open(f"sqlite:///{path}", adopt=True) as store:
        events = make_events(2)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT email FROM users").fetchall() == [("ada@example.org",)]
    # Once our schema is there the file is ours too: no adopt needed from now on.
    async with SQLiteEventStore.open(f"sqlite:///{path}") as store:
        assert await store.current_position() == 2


@pytest.mark.parametrize("component", ["events", "checkpoints"])
@pytest.mark.parametrize("opener", OPENERS, ids=OPENER_IDS)
async def test_newer_schema_version_is_refused_and_left_untouched(tmp_path, opener, component):
    path = tmp_path / "events.db"
    await make_our_database(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE eventsource_schema SET version = 99 WHERE component = ?", (component,))
        db.commit()
    before = digest(path)
    wanted = component == ("events" if opener == SQLiteEventStore.open else "checkpoints")
    if wanted:
        with pytest.raises(NewerSchemaError, match=r"version 99.*Upgrade eventsource-sqlite"):
            async with opener(f"sqlite:///{path}"):
                pass
        assert digest(path) == before
    else:  # the other component's version does not concern this opener
        async with opener(f"sqlite:///{path}"):
            pass


def test_specific_errors_are_storage_and_schema_errors():
    assert issubclass(ForeignDatabaseError, SchemaError)
    assert issubclass(NewerSchemaError, SchemaError)
    for cls in (CorruptDatabaseError, DatabaseLocationError, ReadOnlyDatabaseError):
        assert issubclass(cls, StorageError)


HOSTILE = [
    "O'Brien's \"projection\"",
    "x'); DROP TABLE projection_checkpoints; --",
    "Robert'); DELETE FROM events WHERE ('1'='1",
    "名前 — Ünïcödé 🚀 projection",
    "tab\tnew\nline and back\\slash %_ wildcards",
    "p" * 200,
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_names_are_stored_verbatim(tmp_path, name):
    path = tmp_path / "events.db"
    await make_our_database(path)
    async with SQLiteCheckpointRepository.open(f"sqlite:///{path}") as repo:
        event_id = uuid4()
        await repo.save_position(name, 2, event_id, "T")
        await repo.save_position(name, 3, event_id, "T")
        await repo.update_checkpoint(name, uuid4(), "U")
        assert await repo.get_position(name) == 3
        names = [c.projection_name for c in await repo.get_all_checkpoints()]
        assert sorted(names) == sorted(["P", name])
        metrics = await repo.get_lag_metrics(name)
        assert metrics is not None
        assert metrics.projection_name == name
        assert metrics.events_behind == 0
        # The other projection and the events are intact.
        assert await repo.get_position("P") == 3
        await repo.reset_checkpoint(name)
        assert await repo.get_position(name) is None
        assert await repo.get_position("P") == 3
    async with SQLiteEventStore.open(f"sqlite:///{path}") as store:
        assert await store.current_position() == 3


@pytest.mark.parametrize(
    ("name", "message"),
    [("p" * 201, "at most 200 characters"), ("", "must not be empty"), ("a\x00b", "NUL")],
)
async def test_names_the_core_refuses_write_nothing(tmp_path, name, message):
    path = tmp_path / "events.db"
    await make_our_database(path)
    async with SQLiteCheckpointRepository.open(f"sqlite:///{path}") as repo:
        with pytest.raises(ValueError, match=message):
            await repo.save_position(name, 1, uuid4(), "T")
        with pytest.raises(ValueError, match=message):
            await repo.update_checkpoint(name, uuid4(), "T")
        assert [c.projection_name for c in await repo.get_all_checkpoints()] == ["P"]


async def test_bad_urls_are_configuration_errors(tmp_path):
    from eventsource_core import ConfigurationError

    for url in ("sqlite://host/events.db", "sqlite://", "postgresql:///x"):
        with pytest.raises(ConfigurationError):
            async with SQLiteEventStore.open(url):
                pass
    with pytest.raises(ConfigurationError, match="unknown option"):
        async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/e.db?busy=3"):
            pass
    with pytest.raises(ConfigurationError, match="busy_timeout must be a number"):
        async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/e.db?busy_timeout=soon"):
            pass
    with pytest.raises(ConfigurationError, match="synchronous"):
        async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/e.db?synchronous=sometimes"):
            pass


async def test_an_event_row_with_a_non_json_payload_is_named(tmp_path):
    path = tmp_path / "events.db"
    await make_our_database(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE events SET payload = 'not {json' WHERE global_position = 2")
        db.commit()
    async with SQLiteEventStore.open(f"sqlite:///{path}") as store:
        assert [s.global_position for s in await store.read_page(0, 1)] == [1]
        with pytest.raises(CorruptDatabaseError, match="not JSON"):
            await store.read_page(0, 10)
