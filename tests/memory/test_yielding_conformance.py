"""The conformance kit against a memory store whose calls yield to the scheduler first.

The plain memory store answers without awaiting, which hides races a real database exposes
(an append slipping in between a subscription's start and its first read, for example). This
store gives other tasks several turns before each call, as network round-trips would; appends
still assign positions atomically, so the store keeps its contract.
"""

import anyio
import pytest

from eventsource_core.testing import (
    CheckpointRepositoryContract,
    EventStoreContract,
    SubscriptionContract,
)
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

TURNS = 3


async def turns():
    for _ in range(TURNS):
        await anyio.lowlevel.checkpoint()


class YieldingEventStore(InMemoryEventStore):
    async def append(self, *args, **kwargs):
        await turns()
        return await super().append(*args, **kwargs)

    async def read_stream(self, *args, **kwargs):
        await turns()
        return await super().read_stream(*args, **kwargs)

    async def stream_version(self, *args, **kwargs):
        await turns()
        return await super().stream_version(*args, **kwargs)

    async def read_page(self, *args, **kwargs):
        await turns()
        return await super().read_page(*args, **kwargs)

    async def current_position(self):
        await turns()
        return await super().current_position()

    async def backlog(self, *args, **kwargs):
        await turns()
        return await super().backlog(*args, **kwargs)


class YieldingCheckpoints(InMemoryCheckpointRepository):
    async def get_position(self, subscription_id):
        await turns()
        return await super().get_position(subscription_id)

    async def save_position(self, *args, **kwargs):
        await turns()
        return await super().save_position(*args, **kwargs)


class TestYieldingMemory(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
    @pytest.fixture
    def event_store(self):
        return YieldingEventStore()

    @pytest.fixture
    def checkpoint_repo(self, event_store):
        return YieldingCheckpoints(event_store=event_store)
