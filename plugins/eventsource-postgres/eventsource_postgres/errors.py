"""Errors specific to PostgreSQL; each derives from a core class so callers can catch broadly."""

from __future__ import annotations

from eventsource_core import ConfigurationError, StorageError

__all__ = ["InvalidURLError", "PostgresAuthenticationError", "PostgresConnectionError"]


class InvalidURLError(ConfigurationError):
    """The connection URL cannot be parsed or names an unknown option."""


class PostgresConnectionError(StorageError):
    """The server could not be reached, or the database does not exist."""


class PostgresAuthenticationError(PostgresConnectionError):
    """The server rejected the user name or password."""
