"""The core conformance suite, unchanged, on a real SQLite file.

Store and checkpoints either share one connection or use two connections to the same file;
both layouts are supported and must behave the same.
"""

import aiosqlite
import pytest

from eventsource_core.testing import (
    CheckpointRepositoryContract,
    EventStoreContract,
    SubscriptionContract,
)
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore


@pytest.fixture
def anyio_backend():
    return "asyncio"


class TestSQLiteSharedConnection(
    EventStoreContract, CheckpointRepositoryContract, SubscriptionContract
):
    @pytest.fixture
    async def connection(self, tmp_path):
        async with aiosqlite.connect(tmp_path / "events.db", isolation_level=None) as db:
            yield db

    @pytest.fixture
    async def event_store(self, connection):
        store = SQLiteEventStore(connection)
        await store.ensure_schema()
        return store

    @pytest.fixture
    async def checkpoint_repo(self, connection, event_store):
        return SQLiteCheckpointRepository(connection)


class TestSQLiteSeparateConnections(
    EventStoreContract, CheckpointRepositoryContract, SubscriptionContract
):
    @pytest.fixture
    async def event_store(self, tmp_path):
        async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as store:
            yield store

    @pytest.fixture
    async def checkpoint_repo(self, tmp_path, event_store):
        async with SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/events.db") as repo:
            yield repo
