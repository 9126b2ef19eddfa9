"""The core's SubscriptionManager tests (tests/core/test_manager.py), run on SQLite files.

Those tests take ``store`` and ``repo`` fixtures; here they are a SQLite event store and
checkpoint repository on one temporary file, each with its own connection.
"""

import importlib.util
from pathlib import Path

import pytest

from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

_source = Path(__file__).parents[1] / "core" / "test_manager.py"
_spec = importlib.util.spec_from_file_location("core_manager_tests", _source)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
globals().update({k: v for k, v in vars(_module).items() if k.startswith("test_")})

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path):
    async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as opened:
        yield opened


@pytest.fixture
async def repo(tmp_path, store):
    async with SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/events.db") as opened:
        yield opened
