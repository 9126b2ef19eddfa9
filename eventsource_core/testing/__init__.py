"""A conformance suite every backend runs against itself.

Subclass the contracts in a test module and provide two fixtures that yield fresh, empty
instances: ``event_store`` and ``checkpoint_repo`` (the repository must see that store's events,
so lag metrics are real). Backends that only run on asyncio override ``anyio_backend``::

    class TestMyBackend(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
        @pytest.fixture
        def anyio_backend(self):
            return "asyncio"

        @pytest.fixture
        async def event_store(self): ...

        @pytest.fixture
        async def checkpoint_repo(self, event_store): ...

The pytest plugin (``eventsource_core.testing.plugin``) is loaded automatically when
eventsource-core is installed; it registers the sample events the contracts use.
"""

from .checkpoint_contract import HOSTILE_NAMES, CheckpointRepositoryContract
from .events import (
    AUDITED,
    DEPOSITED,
    OPENED,
    WITHDRAWN,
    Audited,
    Deposited,
    Opened,
    Withdrawn,
    make_events,
)
from .helpers import WAIT, FailingRecorder, Recorder, append, append_to, wait_for_checkpoint
from .store_contract import EventStoreContract
from .subscription_contract import SubscriptionContract

__all__ = [
    "AUDITED",
    "DEPOSITED",
    "HOSTILE_NAMES",
    "OPENED",
    "WAIT",
    "WITHDRAWN",
    "Audited",
    "CheckpointRepositoryContract",
    "Deposited",
    "EventStoreContract",
    "FailingRecorder",
    "Opened",
    "Recorder",
    "SubscriptionContract",
    "Withdrawn",
    "append",
    "append_to",
    "make_events",
    "wait_for_checkpoint",
]
