"""Registers the ``postgresql://`` and ``postgres://`` schemes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventsource_core import hookimpl
from eventsource_core.hookspecs import CheckpointStoreFactory, EventSourceFactory

from .checkpoints import PostgreSQLCheckpointRepository
from .store import PostgreSQLEventStore

SCHEMES = ("postgresql", "postgres")


def open_store(url: str, **options: Any) -> PostgreSQLEventStore:
    """The store is its own async context manager: it opens its pool on enter."""
    return PostgreSQLEventStore.from_url(url, **options)


def open_checkpoints(url: str, **options: Any) -> PostgreSQLCheckpointRepository:
    return PostgreSQLCheckpointRepository.from_url(url, **options)


@hookimpl
def register_event_sources(register: Callable[[str, EventSourceFactory], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, open_store)


@hookimpl
def register_checkpoint_stores(register: Callable[[str, CheckpointStoreFactory], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, open_checkpoints)
