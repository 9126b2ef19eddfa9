"""Registers the ``sqlite://`` scheme for event stores and checkpoint repositories."""

from __future__ import annotations

from collections.abc import Callable

from eventsource_core import hookimpl
from eventsource_core.hookspecs import CheckpointStoreFactory, EventSourceFactory

from .checkpoints import SQLiteCheckpointRepository
from .store import SQLiteEventStore


@hookimpl
def register_event_sources(register: Callable[[str, EventSourceFactory], None]) -> None:
    register("sqlite", SQLiteEventStore.open)


@hookimpl
def register_checkpoint_stores(register: Callable[[str, CheckpointStoreFactory], None]) -> None:
    register("sqlite", SQLiteCheckpointRepository.open)
