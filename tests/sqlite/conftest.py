"""aiosqlite runs on asyncio only, so every SQLite test pins the asyncio event loop."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
