"""In-memory backend: everything lives in this process and is gone when it exits."""

from .bus import InMemoryEventBus
from .checkpoints import InMemoryCheckpointRepository
from .store import InMemoryEventStore

__all__ = ["InMemoryCheckpointRepository", "InMemoryEventBus", "InMemoryEventStore"]
