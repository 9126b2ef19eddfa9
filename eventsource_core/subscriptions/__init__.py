"""Subscriptions: catch up from a checkpoint, then follow live events."""

from .config import START_OPTIONS, SubscriptionConfig
from .manager import SubscriptionManager
from .strategies import (
    AfterBatch,
    AfterEachEvent,
    CheckpointPolicy,
    CheckpointStrategy,
    Periodic,
)
from .subscription import Subscription, SubscriptionState

__all__ = [
    "START_OPTIONS",
    "AfterBatch",
    "AfterEachEvent",
    "CheckpointPolicy",
    "CheckpointStrategy",
    "Periodic",
    "Subscription",
    "SubscriptionConfig",
    "SubscriptionManager",
    "SubscriptionState",
]
