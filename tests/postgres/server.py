"""A throwaway PostgreSQL server for tests and benchmarks.

``initdb`` into a temporary folder, listen on a free loopback port with password auth, and run
as the unprivileged ``postgres`` OS user when we are root (PostgreSQL refuses to run as root).
The outage tests stop and start the same server mid-run with :meth:`PostgresServer.stop` and
:meth:`PostgresServer.start`; the data folder survives until :meth:`PostgresServer.destroy`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["PostgresServer", "ServerUnavailable", "find_bindir"]

TEST_USER = "eventsource"
TEST_PASSWORD = "eventsource-test-secret"
SUPERUSER = "postgres"


class ServerUnavailable(RuntimeError):
    """The PostgreSQL binaries are missing or the server did not start."""


def find_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, or ``$PG_BINDIR``."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise ServerUnavailable(
            "pg_config is not on PATH; install PostgreSQL 15 server binaries or set "
            "EVENTSOURCE_TEST_POSTGRES_DSN to an existing server"
        )
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    bindir = Path(out.stdout.strip())
    if not (bindir / "initdb").exists():
        raise ServerUnavailable(f"{bindir} has no initdb; install the PostgreSQL server package")
    return bindir


#: Runs beside the test process; if that dies without cleaning up (killed by a CI timeout),
#: it stops the server and deletes its folder, so no orphaned server keeps running.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, base, *stop = sys.argv[1:]
while os.getppid() == int(parent):
    time.sleep(1)
subprocess.run(stop, capture_output=True)
shutil.rmtree(base, ignore_errors=True)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server in a temporary folder. Use :meth:`create` to get a running one."""

    def __init__(self, base: Path, bindir: Path, port: int, *, durable: bool = False) -> None:
        self.base = base
        self.bindir = bindir
        self.port = port
        self.durable = durable
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.log = base / "server.log"
        self._as_postgres = os.geteuid() == 0
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, *, durable: bool = False) -> PostgresServer:
        """initdb, start, and add the test role. ``durable`` keeps fsync on (benchmarks)."""
        bindir = find_bindir()
        base = Path(tempfile.mkdtemp(prefix="eventsource-pg-"))
        server = cls(base, bindir, _free_port(), durable=durable)
        try:
            server._initdb()
            server.start()
            server._watch()
            server.psql(f"CREATE ROLE {TEST_USER} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}'")
        except BaseException:
            server.destroy()
            raise
        return server

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        pwfile = self.base / "pwfile"
        pwfile.write_text(TEST_PASSWORD + "\n")
        if self._as_postgres:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root needs an unprivileged 'postgres' OS user to run the server; "
                    "create one (useradd --system postgres) or run the tests as another user"
                ) from None
            for path in (self.base, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 200",
            "shared_buffers = 128MB",
            "log_min_messages = warning",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def _watch(self) -> None:
        stop = self._command("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.base), *stop],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) and wait until it accepts connections."""
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash as far as clients can tell."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    def is_running(self) -> bool:
        result = self._run("pg_ctl", "status", "-D", str(self.data), check=False)
        return result.returncode == 0

    def destroy(self) -> None:
        """Stop if running and delete the folder."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.data.exists() and self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # -- access --------------------------------------------------------------------------------

    def dsn(
        self,
        database: str = "postgres",
        *,
        user: str = TEST_USER,
        password: str | None = TEST_PASSWORD,
    ) -> str:
        """A TCP URL with password auth, as applications connect."""
        auth = quote(user) if password is None else f"{quote(user)}:{quote(password)}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def admin_dsn(self, database: str = "postgres") -> str:
        """Superuser over the unix socket (trust auth), for creating databases."""
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir))}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run(
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
        )
        return result.stdout

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = self._command(tool, *args)
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.base)
        if check and result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ServerUnavailable(
                f"{tool} {' '.join(args[:2])} failed ({result.returncode}): "
                f"{result.stderr.strip()}\n{log}"
            )
        return result
