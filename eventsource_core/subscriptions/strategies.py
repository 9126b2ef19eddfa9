"""Checkpoint strategies decide when a subscription writes its progress.

A strategy is a factory registered under a name through the ``register_checkpoint_strategies``
hook; it builds one :class:`CheckpointPolicy` per subscription. The three built-ins register
through that same hook, so a plugin's strategy is a peer of theirs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..hookspecs import StrategyFactory, hookimpl

if TYPE_CHECKING:
    from .config import SubscriptionConfig

__all__ = [
    "AfterBatch",
    "AfterEachEvent",
    "CheckpointPolicy",
    "CheckpointStrategy",
    "Periodic",
]


class CheckpointStrategy(enum.StrEnum):
    """The built-in strategies. Any registered name works where these are accepted."""

    AFTER_EACH_EVENT = "after_each_event"
    AFTER_BATCH = "after_batch"
    PERIODIC = "periodic"


class CheckpointPolicy(Protocol):
    """One subscription's answer to "save now?".

    ``pending`` counts events handled since the last save; ``since_save`` is in seconds.
    Whatever a policy answers, the subscription also saves when it stops.
    """

    #: Whether ``due`` is asked after every event, not only at the end of each batch.
    per_event: bool

    def due(self, pending: int, since_save: float, end_of_batch: bool) -> bool:
        """Whether to write the checkpoint now."""
        ...

    def recheck_in(self, since_save: float) -> float | None:
        """While idle with unsaved progress: seconds until ``due`` may turn true, or ``None``."""
        ...


class AfterEachEvent:
    """Save after every event: at most one event is repeated after a crash."""

    per_event = True

    def due(self, pending: int, since_save: float, end_of_batch: bool) -> bool:
        return pending > 0

    def recheck_in(self, since_save: float) -> float | None:
        return 0.0


class AfterBatch:
    """Save once per batch read from the store: at most one batch is repeated after a crash."""

    per_event = False

    def due(self, pending: int, since_save: float, end_of_batch: bool) -> bool:
        return end_of_batch and pending > 0

    def recheck_in(self, since_save: float) -> float | None:
        return 0.0


class Periodic:
    """Save when ``interval`` seconds have passed since the last save, and when idle after that."""

    per_event = True

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def due(self, pending: int, since_save: float, end_of_batch: bool) -> bool:
        return pending > 0 and since_save >= self.interval

    def recheck_in(self, since_save: float) -> float | None:
        return max(0.0, self.interval - since_save)


def _periodic(config: SubscriptionConfig) -> CheckpointPolicy:
    return Periodic(config.checkpoint_interval)


BUILTIN: dict[str, Callable[[SubscriptionConfig], CheckpointPolicy]] = {
    CheckpointStrategy.AFTER_EACH_EVENT: lambda _config: AfterEachEvent(),
    CheckpointStrategy.AFTER_BATCH: lambda _config: AfterBatch(),
    CheckpointStrategy.PERIODIC: _periodic,
}


@hookimpl
def register_checkpoint_strategies(register: Callable[[str, StrategyFactory], None]) -> None:
    for name, factory in BUILTIN.items():
        register(name, factory)
