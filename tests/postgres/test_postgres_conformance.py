import pytest

from eventsource_core.testing import (
    CheckpointRepositoryContract,
    EventStoreContract,
    SubscriptionContract,
)
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore


class TestPostgreSQL(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
    @pytest.fixture
    async def event_store(self, pg_pool):
        async with PostgreSQLEventStore(pg_pool) as store:
            yield store

    @pytest.fixture
    async def checkpoint_repo(self, pg_pool, event_store):
        async with PostgreSQLCheckpointRepository(pg_pool) as repo:
            yield repo
