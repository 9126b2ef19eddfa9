import pytest

from eventsource_core.testing import (
    CheckpointRepositoryContract,
    EventStoreContract,
    SubscriptionContract,
)
from eventsource_postgres import PostgreSQLCheckpointRepository, PostgreSQLEventStore


class TestPostgreSQL(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
    @pytest.fixture
    async def event_store(self, pg_pool, pg_schema):
        async with PostgreSQLEventStore(pg_pool, schema=pg_schema) as store:
            yield store

    @pytest.fixture
    async def checkpoint_repo(self, pg_pool, pg_schema, event_store):
        async with PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema) as repo:
            yield repo
