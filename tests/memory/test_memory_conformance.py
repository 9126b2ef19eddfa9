"""The whole conformance kit against the memory backend, on asyncio and trio."""

import pytest

from eventsource_core.testing import (
    CheckpointRepositoryContract,
    EventStoreContract,
    SubscriptionContract,
)
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore


class TestInMemory(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
    @pytest.fixture
    def event_store(self):
        return InMemoryEventStore()

    @pytest.fixture
    def checkpoint_repo(self, event_store):
        return InMemoryCheckpointRepository(event_store=event_store)
