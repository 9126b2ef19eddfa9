"""Test, lint and benchmark sessions. ``nox -l`` lists them; plain ``nox`` runs the CI set."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = ROOT / "plugins"
BACKENDS = ["memory", "sqlite", "postgres"]
TEST_DEPS = ["pytest>=8", "trio>=0.25", "pytest-timeout>=2.3"]

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["tests", "lint", "types", "tutorial", "demo", "docs"]


def _installed_pythons() -> list[str]:
    """Every Python 3.11-3.13 on this machine; pyenv shims only resolve listed versions."""
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
        wanted = [v for v in out.stdout.split() if v.startswith(("3.11.", "3.12.", "3.13."))]
        if wanted:
            os.environ["PYENV_VERSION"] = ":".join(wanted)
    found = [v for v in ("3.11", "3.12", "3.13") if shutil.which(f"python{v}")]
    versions = []
    for version in found:
        probe = subprocess.run([f"python{version}", "--version"], capture_output=True)
        if probe.returncode == 0:
            versions.append(version)
    return versions or ["3.11"]


PYTHONS = _installed_pythons()


def _plugin_paths(backend: str) -> list[str]:
    paths = [str(PLUGINS / "eventsource-memory")]
    if backend != "memory":
        paths.append(str(PLUGINS / f"eventsource-{backend}"))
    return paths


def install_backend(session: nox.Session, backend: str, *extra: str) -> None:
    args: list[str] = ["-e", str(ROOT)]
    for path in _plugin_paths(backend):
        args += ["-e", path]
    session.install(*args, *TEST_DEPS, *extra)


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the core tests and one backend's suite (conformance, crash, bad input)."""
    if not (PLUGINS / f"eventsource-{backend}").exists():
        session.skip(f"the {backend} plugin is not in this checkout yet")
    install_backend(session, backend)
    paths = ["tests/core", "tests/memory"] if backend == "memory" else [f"tests/{backend}"]
    session.run("pytest", *paths, *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def types(session: nox.Session) -> None:
    """Type-check the core (strict) and the plugins with mypy."""
    install_backend(session, "memory", "mypy>=1.10")
    for backend in ("sqlite", "postgres"):
        if (PLUGINS / f"eventsource-{backend}").exists():
            session.install("-e", str(PLUGINS / f"eventsource-{backend}"))
    targets = ["eventsource_core"] + [
        str(p / p.name.replace("-", "_")) for p in sorted(PLUGINS.iterdir()) if p.is_dir()
    ]
    session.run("mypy", *targets)


@nox.session(python=PYTHONS[0])
def tutorial(session: nox.Session) -> None:
    """Run the checkpoint tutorial's complete example and compare it with the expected output."""
    install_backend(session, "memory")
    session.run("pytest", "tests/core/test_tutorial.py", *session.posargs)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Run every python block of README.md and docs/ (the PostgreSQL page on a throwaway server)."""
    # The tutorial imports the PostgreSQL plugin and its page runs against a server.
    install_backend(session, "sqlite", "-e", str(PLUGINS / "eventsource-postgres"))
    session.run("pytest", "tests/docs", *session.posargs)


@nox.session(python=PYTHONS[0])
def demo(session: nox.Session) -> None:
    """The quick start: the checkpoint tutorial on a SQLite file, twice (the second resumes)."""
    backend = "sqlite" if (PLUGINS / "eventsource-sqlite").exists() else "memory"
    install_backend(session, backend)
    if backend == "sqlite":
        db = ROOT / ".demo" / "events.db"
        session.run("python", "examples/checkpoints_sqlite.py", str(db))
        session.run("python", "examples/checkpoints_sqlite.py", str(db))
    else:
        session.run("python", "examples/checkpoints_tutorial.py")


@nox.session(python=PYTHONS[0])
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def bench(session: nox.Session, backend: str) -> None:
    """Benchmark a backend; figures are printed as ratios to the raw driver in the same run."""
    script = ROOT / "benchmarks" / f"{backend}_bench.py"
    if not script.exists():
        session.skip(f"no benchmark for {backend} yet")
    install_backend(session, backend)
    session.run("python", str(script), *session.posargs)


CRASH_TESTS = {
    "sqlite": ["tests/sqlite/test_sqlite_processes.py", "-k", "sigkill"],
    "postgres": ["tests/postgres/test_crash.py"],
}


@nox.session(python=PYTHONS[0])
@nox.parametrize("backend", list(CRASH_TESTS), ids=list(CRASH_TESTS))
def crash(session: nox.Session, backend: str) -> None:
    """Full-size crash test: 20,000 events, SIGKILL at 25 random points, every strategy."""
    install_backend(session, backend)
    env = {
        "EVENTSOURCE_CRASH_EVENTS": os.environ.get("EVENTSOURCE_CRASH_EVENTS", "20000"),
        "EVENTSOURCE_CRASH_KILLS": os.environ.get("EVENTSOURCE_CRASH_KILLS", "25"),
    }
    session.run("pytest", *CRASH_TESTS[backend], "-v", *session.posargs, env=env)


@nox.session(python=PYTHONS[0])
def peak_memory(session: nox.Session) -> None:
    """Peak memory of a SQLite catch-up over 1M events against 100k (target: at most +10%)."""
    install_backend(session, "sqlite")
    db = Path(session.create_tmp()) / "peak.db"
    session.run("python", "benchmarks/peak_memory.py", f"sqlite:///{db}", *session.posargs)
