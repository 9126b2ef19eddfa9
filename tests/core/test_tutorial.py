"""The checkpoint tutorial's complete example prints the spec's expected output.

The subprocess run is the example exactly as a reader runs it (``asyncio.run``). The in-process
run executes the same ``main()`` on asyncio and on trio; the only thing swapped is the module's
``asyncio`` name, whose ``sleep`` becomes ``anyio.sleep`` so the waits work on either loop.
Everything else (aggregates, repository, bus, manager, checkpoints) is the example's own code.
"""

import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "checkpoints_tutorial.py"
EXPECTED = (Path(__file__).parent / "fixtures" / "tutorial_expected_output.txt").read_text()

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?")


def mask(output: str) -> str:
    masked = TIMESTAMP_RE.sub("[timestamp]", UUID_RE.sub("[UUID]", output))
    return "\n".join(line.rstrip() for line in masked.strip().splitlines())


def event_ids(output: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"Last event ID: (\S+)", output)]


def check(output: str) -> None:
    assert mask(output) == mask(EXPECTED)
    first, final = event_ids(output)
    assert first != final, "the final checkpoint names the live event, not a historical one"
    assert "None" not in output


def test_example_subprocess_prints_the_expected_output():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check(result.stdout)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("checkpoints_tutorial", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
async def test_example_main_runs_on_this_event_loop(example, monkeypatch, capsys, anyio_backend):
    assert "asyncio.sleep" in EXAMPLE.read_text(), "the swap below no longer applies"
    monkeypatch.setattr(example, "asyncio", types.SimpleNamespace(sleep=anyio.sleep))
    with anyio.fail_after(30):
        await example.main()
    check(capsys.readouterr().out)
