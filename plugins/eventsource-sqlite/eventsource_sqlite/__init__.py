"""SQLite backend: events and checkpoints in one file, exactly-once projections, asyncio only."""

from .checkpoints import SQLiteCheckpointRepository, SQLiteCheckpointTransaction
from .errors import (
    CorruptDatabaseError,
    DatabaseLocationError,
    ForeignDatabaseError,
    NewerSchemaError,
    ReadOnlyDatabaseError,
)
from .store import SQLiteEventStore

__all__ = [
    "CorruptDatabaseError",
    "DatabaseLocationError",
    "ForeignDatabaseError",
    "NewerSchemaError",
    "ReadOnlyDatabaseError",
    "SQLiteCheckpointRepository",
    "SQLiteCheckpointTransaction",
    "SQLiteEventStore",
]
