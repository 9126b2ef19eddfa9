"""A conformance suite every backend runs against itself.

Subclass the contracts in a test module and provide two fixtures that yield fresh, empty
instances: ``event_store`` and ``checkpoint_repo`` (the repository must see that store's events,
so lag metrics are real). Backends that only run on asyncio override ``anyio_backend``::

    class TestMyBackend(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
        @pytest.fixture
        async def event_store(self): ...
        @pytest.fixture
        async def checkpoint_repo(self, event_store): ...

The pytest plugin (``eventsource_core.testing.plugin``) is loaded automatically when
eventsource-core is installed; it provides the sample events the contracts use.
"""

from .checkpoint_contract import CheckpointRepositoryContract
from .events import Deposited, Opened, Withdrawn, make_events
from .store_contract import EventStoreContract
from .subscription_contract import SubscriptionContract

__all__ = [
    "CheckpointRepositoryContract",
    "Deposited",
    "EventStoreContract",
    "Opened",
    "SubscriptionContract",
    "Withdrawn",
    "make_events",
]
