"""eventsource-core: event-sourced projections that know where they stopped."""

from .aggregates import AggregateRepository, AggregateRoot
from .checkpoints import (
    CheckpointData,
    CheckpointRepository,
    LagMetrics,
    QueueingCheckpointRepository,
)
from .claims import Claim, ClaimingCheckpointRepository
from .errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventTypeError,
    EventDecodeError,
    EventSourceError,
    InvalidAppendError,
    OwnershipLostError,
    PluginError,
    ProjectionFailedError,
    SchemaError,
    StorageError,
    StorageUnavailableError,
    SubscriptionError,
    UnknownBackendError,
    UnknownEventTypeError,
    UnregisteredEventError,
)
from .events import DomainEvent, EventRegistry, default_registry, register_event
from .hookspecs import hookimpl
from .plugins import open_checkpoint_repository, open_event_store, plugin_versions
from .serialization import EventCodec
from .store import Backlog, EventBus, EventSource, EventStore, Notifier, ReadAll, StoredEvent
from .transactions import (
    CheckpointTransaction,
    TransactionalCheckpointRepository,
    TransactionalProjection,
)

__version__ = "0.1.0"

__all__ = [
    "AggregateNotFoundError",
    "AggregateRepository",
    "AggregateRoot",
    "Backlog",
    "CheckpointData",
    "CheckpointRepository",
    "CheckpointTransaction",
    "Claim",
    "ClaimingCheckpointRepository",
    "ConcurrencyError",
    "ConfigurationError",
    "DomainEvent",
    "DuplicateEventTypeError",
    "EventBus",
    "EventCodec",
    "EventDecodeError",
    "EventRegistry",
    "EventSource",
    "EventSourceError",
    "EventStore",
    "InvalidAppendError",
    "LagMetrics",
    "Notifier",
    "OwnershipLostError",
    "PluginError",
    "ProjectionFailedError",
    "QueueingCheckpointRepository",
    "ReadAll",
    "SchemaError",
    "StorageError",
    "StorageUnavailableError",
    "StoredEvent",
    "SubscriptionError",
    "TransactionalCheckpointRepository",
    "TransactionalProjection",
    "UnknownBackendError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "default_registry",
    "hookimpl",
    "open_checkpoint_repository",
    "open_event_store",
    "plugin_versions",
    "register_event",
]
