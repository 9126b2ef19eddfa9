"""The runnable examples in the SQLite docs run, twice, and print what the docs promise."""

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).parents[2] / "docs"


def complete_examples(page: Path) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
    return [b for b in blocks if 'if __name__ == "__main__":' in b]


def run(script: Path, db: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(script), str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_exactly_once_example_runs_and_adds_each_order_once(tmp_path):
    (example,) = complete_examples(DOCS / "how-to" / "exactly-once.md")
    script = tmp_path / "exactly_once.py"
    script.write_text(example)
    db = tmp_path / "shop.db"

    first = run(script, db)
    assert first.splitlines() == ["ada: 2 orders, 37.50", "grace: 1 orders, 12.50", "checkpoint: 3"]
    second = run(script, db)
    assert second.splitlines() == [
        "ada: 4 orders, 75.00",
        "grace: 2 orders, 25.00",
        "checkpoint: 6",
    ]
