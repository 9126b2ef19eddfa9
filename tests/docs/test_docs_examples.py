"""Every ```python block in README.md and docs/**/*.md runs against the real library.

One test per block, named ``page:line``. A page's blocks run in order in one namespace (see
``markdown_blocks``), so a block that fails makes the rest of its page skip instead of failing
for a reason that is not theirs. A block marked ``<!-- not run: why -->`` is skipped with that
reason; ``markdown_blocks`` describes the other conventions (files of an example package, and
``print(...)  # output`` lines whose output is checked).

Blocks that use the PostgreSQL page's example URL (``EXAMPLE_POSTGRES_URL``) run against a
throwaway server (the one the PostgreSQL tests use) with that URL replaced by the server's; set
``EVENTSOURCE_TEST_POSTGRES_DSN`` to use an existing server instead. Without a server they skip,
and under CI (``CI`` set) they fail, as the PostgreSQL tests do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from .markdown_blocks import Block, PageRun, python_blocks

EXAMPLE_POSTGRES_URL = "postgresql://app:secret@db.internal:5432/app"

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def needs_postgres(page: Path) -> bool:
    return any(EXAMPLE_POSTGRES_URL in block.source for block in python_blocks(page))


class Pages:
    """The page being run; moving on to the next page closes the previous one."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.current: PageRun | None = None

    def run_for(self, page: Path, replace: dict[str, str]) -> PageRun:
        if self.current is not None and self.current.page != page:
            self.close()
        if self.current is None:
            slug = page.relative_to(ROOT).with_suffix("").as_posix().replace("/", "-")
            self.current = PageRun(page, self._tmp.mktemp(slug), replace)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            current, self.current = self.current, None
            current.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    opened = Pages(tmp_path_factory)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A URL to an empty database on a throwaway (or the configured) PostgreSQL server."""
    pytest.importorskip("eventsource_postgres", reason="the PostgreSQL plugin is not installed")
    from postgres.target import pg_target  # tests/postgres/target.py

    with pg_target() as target:
        yield asyncio.run(target.fresh_database())


def test_every_python_fence_is_found():
    """A fence the parser misses (```py, ```python3, indented) would silently go untested."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        fences = [n for n, line in enumerate(lines, 1) if line.lstrip().startswith("```py")]
        found = [block.line - 1 for block in python_blocks(page)]
        assert found == fences, f"{page}: label Python blocks ```python, on a line of their own"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id(ROOT) for block in BLOCKS])
def test_docs_block_runs(block: Block, pages: Pages, request: pytest.FixtureRequest) -> None:
    replace = {}
    if needs_postgres(block.page):
        replace[EXAMPLE_POSTGRES_URL] = request.getfixturevalue("postgres_url")
    run = pages.run_for(block.page, replace)
    if run.failed_at is not None:
        pytest.skip(f"an earlier block of this page (line {run.failed_at}) failed")
    if block.not_run is not None:
        pytest.skip(f"not run: {block.not_run}")
    missed = [  # blocks this one builds on that a selection (-k, a node id) left out
        earlier
        for earlier in BLOCKS
        if earlier.page == block.page and earlier.line < block.line
        if earlier.not_run is None and earlier.line not in run.ran
    ]
    for earlier in missed:
        run.run(earlier)
    run.run(block)
