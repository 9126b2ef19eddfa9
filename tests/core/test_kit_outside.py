"""A third-party backend runs the conformance kit with nothing but its two fixtures.

The run happens in a fresh directory, outside this repository's conftest, so only what
eventsource-core installs (the kit and its pytest plugin) and anyio's own plugin are in play.
"""

import re
import subprocess
import sys
import textwrap

THIRD_PARTY_TEST = textwrap.dedent(
    """
    import pytest

    from eventsource_core.testing import (
        CheckpointRepositoryContract,
        EventStoreContract,
        SubscriptionContract,
    )
    from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore


    class TestMyBackend(EventStoreContract, CheckpointRepositoryContract, SubscriptionContract):
        @pytest.fixture
        async def event_store(self):
            yield InMemoryEventStore()

        @pytest.fixture
        async def checkpoint_repo(self, event_store):
            yield InMemoryCheckpointRepository(event_store=event_store)
    """
)


def test_the_kit_runs_from_a_third_party_test_module(tmp_path):
    (tmp_path / "test_my_backend.py").write_text(THIRD_PARTY_TEST)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout
    assert result.returncode == 0, output
    passed = int(re.search(r"(\d+) passed", output).group(1))
    assert passed > 100, output
    assert "failed" not in output and "error" not in output.lower()
