"""Start worker scripts as real child processes, with their output in a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

HERE = Path(__file__).parent


class Worker:
    """One child process running ``tests/postgres/workers/<script>.py``."""

    def __init__(self, script: str, args: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{script}.py"), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, text: str, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while text not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.pid} exited early:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.pid} never printed {text!r}:\n{self.output()}")
            await anyio.sleep(0.05)

    def wait(self, timeout: float) -> int:
        """Wait for the worker to end on its own; its log is closed either way."""
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> None:
        """SIGKILL: no clean-up, no release, no final checkpoint."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._out.close()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the worker stops its subscriptions and saves checkpoints."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(
                f"worker {self.pid} did not stop:\n{self.output()[-3000:]}"
            ) from exc
        self._out.close()
        return code
