"""Find the ```python blocks of the Markdown docs and run a page's blocks in one namespace.

A page's blocks build on each other (one defines an event, a later one appends it), so they run
in order in one shared namespace, on one asyncio event loop, in a fresh working directory.
Top-level ``await`` is allowed, as in ``python -m asyncio``. A page run may replace strings in
the code first (an example server URL by a test server's). Each block is compiled with its
Markdown file as file name and its real line numbers, so a traceback points into the page.

A block that cannot run on its own is marked on the line just before its fence:
``<!-- not run: why -->``. A block that is a file of an example package is marked
``<!-- file: package/module.py -->``: the page's files are written into its directory when the
page starts, and at its turn the block's module is imported, or a ``test_*.py`` file is run by
pytest in a subprocess. A one-line ``print(...)  # text`` promises its output: it must print
``text``, or the part of ``text`` before the first ``": "`` (the rest explains).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import importlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsource_core.events import default_registry
from eventsource_core.plugins import get_plugin_manager

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|file):\s*(?P<value>\S.*?)\s*-->\s*$")
PROMISED_OUTPUT = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<output>\S.*?)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced ```python block: where it starts, its code and its marker, if any."""

    page: Path
    line: int  # the 1-based line number of the first line of code
    source: str
    not_run: str | None = None  # why it is not run
    file: str | None = None  # the example package's file it is, relative to the page's folder

    def id(self, root: Path) -> str:
        return f"{self.page.relative_to(root).as_posix()}:{self.line}"


def python_blocks(page: Path) -> Iterator[Block]:
    """Every ```python block of ``page``, in order; an unclosed fence is an error."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE_OPEN.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = opening["indent"]
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{index + 1}: the ```python fence is never closed")
        body = [line.removeprefix(indent) for line in lines[start:end]]
        source = "\n".join(body) + "\n"
        marker = _marker(lines, index)
        if marker is None:
            yield Block(page, start + 1, source)
        elif marker["kind"] == "not run":
            yield Block(page, start + 1, source, not_run=marker["value"])
        else:
            yield Block(page, start + 1, source, file=marker["value"])
        index = end + 1


def _marker(lines: list[str], fence: int) -> re.Match[str] | None:
    before = fence - 1
    while before >= 0 and not lines[before].strip():
        before -= 1
    return MARKER.match(lines[before]) if before >= 0 else None


def promised_output(page: Path) -> dict[int, str]:
    """Line number -> the output its ``print(...)  # text`` promises."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = (PROMISED_OUTPUT.match(line) for line in lines)
    return {number: match["output"] for number, match in enumerate(found, 1) if match}


class PageRun:
    """Runs one page's blocks in order, sharing a namespace, an event loop and a directory.

    A page starts with no registered event types; :meth:`close` restores them and removes the
    plugins the page registered, so pages (and other tests) that use one type name do not collide.
    """

    def __init__(self, page: Path, workdir: Path, replace: dict[str, str] | None = None) -> None:
        self.page = page
        self._replace = replace or {}
        self.namespace: dict[str, Any] = {
            "__name__": f"docs_page_{page.stem.replace('-', '_')}",
            "print": self._print,
        }
        self._promised = promised_output(page)
        self.failed_at: int | None = None
        self.ran: set[int] = set()  # first lines of the blocks run so far
        self._workdir = workdir
        self._previous_cwd = Path.cwd()
        self._runner = asyncio.Runner()
        # A page starts with no event types, as in a fresh process, so its names cannot clash
        # with other tests' (the registry has no public snapshot API; tests may look inside).
        self._event_types = dict(default_registry._by_name)
        default_registry._by_name.clear()
        self._plugins = {name for name, _ in get_plugin_manager().list_name_plugin()}
        os.chdir(workdir)
        for block in python_blocks(page):
            if block.file is not None:
                target = workdir / block.file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self._replaced(block.source), encoding="utf-8")
        sys.path.insert(0, str(workdir))

    def run(self, block: Block) -> None:
        """Run one block; a top-level ``await`` makes it a coroutine, run on the page's loop."""
        try:
            if block.file is None:
                self._run_code(block)
            elif Path(block.file).name.startswith("test_"):
                self._run_tests(block.file)
            elif block.file.endswith(".py"):
                module = block.file.removesuffix(".py").removesuffix("/__init__")
                importlib.import_module(module.replace("/", "."))
        except BaseException:
            self.failed_at = block.line
            raise
        self.ran.add(block.line)

    def _replaced(self, source: str) -> str:
        for old, new in self._replace.items():  # e.g. an example URL by a test server's
            source = source.replace(old, new)
        return source

    def _run_code(self, block: Block) -> None:
        padded = "\n" * (block.line - 1) + self._replaced(block.source)  # the page's line numbers
        code = compile(
            padded, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
        result = eval(code, self.namespace)  # the docs' own code, compiled above
        if inspect.iscoroutine(result):
            self._runner.run(result)

    def _run_tests(self, file: str) -> None:
        """Run a test file of the example package with pytest, as its author would."""
        path = os.pathsep.join(filter(None, [str(self._workdir), os.environ.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", file],
            cwd=self._workdir,
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"pytest {file} failed:\n{done.stdout}\n{done.stderr}")

    def close(self) -> None:
        """Close the loop, go back to the old directory, forget event types and plugins."""
        try:
            self._runner.run(self._close_pools())
            self._runner.close()
        finally:
            os.chdir(self._previous_cwd)
            sys.path.remove(str(self._workdir))
            for name, module in list(sys.modules.items()):
                where = getattr(module, "__file__", None) or ""
                if where.startswith(str(self._workdir)):
                    del sys.modules[name]
            default_registry._by_name.clear()
            default_registry._by_name.update(self._event_types)
            manager = get_plugin_manager()
            for name, plugin in manager.list_name_plugin():
                if name not in self._plugins and plugin is not None:
                    manager.unregister(name=name)

    def _print(self, *args: Any, **kwargs: Any) -> None:
        """``print``, checking the output a ``# comment`` on the calling line promises."""
        builtins.print(*args, **kwargs)
        caller = sys._getframe(1)
        if kwargs or caller.f_code.co_filename != str(self.page):
            return
        promised = self._promised.get(caller.f_lineno)
        shown = " ".join(str(arg) for arg in args)
        if promised is not None and shown not in (promised, promised.split(": ", 1)[0]):
            raise AssertionError(
                f"{self.page.name}:{caller.f_lineno} promises {promised!r} but printed {shown!r}"
            )

    async def _close_pools(self) -> None:
        """An example may leave its asyncpg pool open, as an application would until it exits."""
        for value in list(self.namespace.values()):
            if type(value).__module__.startswith("asyncpg") and type(value).__name__ == "Pool":
                await value.close()
