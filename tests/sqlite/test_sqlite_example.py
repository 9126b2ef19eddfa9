"""The quick start: the checkpoint example on a SQLite file, run twice in two real processes."""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "checkpoints_sqlite.py"


def run(db: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_second_run_resumes_from_the_first_runs_checkpoint(tmp_path):
    db = tmp_path / "demo" / "events.db"
    first, second = run(db), run(db)

    assert "No checkpoint yet" in first
    assert "Position: 0 -> 3" in first
    assert "Found checkpoint at position 3" in second
    assert "Position: 3 -> 6" in second
    # The restarted process handled only the orders placed since the first run.
    for output in (first, second):
        assert re.search(r"Orders handled in this run: 3\n", output)
        assert "events behind: 0" in output
    assert "Events processed (all runs): 6" in second
