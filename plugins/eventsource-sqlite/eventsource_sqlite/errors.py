"""Errors specific to SQLite files. Each keeps the file as it was and says what to do next."""

from __future__ import annotations

from eventsource_core import SchemaError, StorageError

__all__ = [
    "CorruptDatabaseError",
    "DatabaseLocationError",
    "ForeignDatabaseError",
    "NewerSchemaError",
    "ReadOnlyDatabaseError",
]


class DatabaseLocationError(StorageError):
    """The path cannot hold a database: its directory is missing, or it is not a file."""


class ReadOnlyDatabaseError(StorageError):
    """The database file (or its directory) cannot be written."""


class CorruptDatabaseError(StorageError):
    """The file is not a SQLite database, or SQLite reports it as damaged."""


class ForeignDatabaseError(SchemaError):
    """The database holds tables this backend did not create; it will not touch them."""


class NewerSchemaError(SchemaError):
    """A newer release of eventsource-sqlite created this schema."""
