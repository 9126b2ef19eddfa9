"""Registers the ``memory://`` scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from eventsource_core import hookimpl
from eventsource_core.hookspecs import CheckpointStoreFactory, EventSourceFactory

from .checkpoints import InMemoryCheckpointRepository
from .store import InMemoryEventStore


@asynccontextmanager
async def open_store(url: str, **options: Any) -> AsyncIterator[InMemoryEventStore]:
    yield InMemoryEventStore(**options)


@asynccontextmanager
async def open_checkpoints(url: str, **options: Any) -> AsyncIterator[InMemoryCheckpointRepository]:
    yield InMemoryCheckpointRepository(**options)


@hookimpl
def register_event_sources(register: Callable[[str, EventSourceFactory], None]) -> None:
    register("memory", open_store)


@hookimpl
def register_checkpoint_stores(register: Callable[[str, CheckpointStoreFactory], None]) -> None:
    register("memory", open_checkpoints)
