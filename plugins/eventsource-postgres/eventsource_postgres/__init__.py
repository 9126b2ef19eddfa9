"""PostgreSQL backend: a gap-safe event store, checkpoints and NOTIFY wake-ups (asyncio only)."""

from .checkpoints import PostgreSQLCheckpointRepository, PostgreSQLCheckpointTransaction
from .connection import skip_session_reset
from .errors import InvalidURLError, PostgresAuthenticationError, PostgresConnectionError
from .gaps import BlockingTransaction, HeldBack
from .schema import LATEST_VERSION
from .store import PostgreSQLEventStore

__all__ = [
    "LATEST_VERSION",
    "BlockingTransaction",
    "HeldBack",
    "InvalidURLError",
    "PostgreSQLCheckpointRepository",
    "PostgreSQLCheckpointTransaction",
    "PostgreSQLEventStore",
    "PostgresAuthenticationError",
    "PostgresConnectionError",
    "skip_session_reset",
]
