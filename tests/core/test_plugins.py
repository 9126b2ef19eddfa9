"""Plugin loading, the three hooks, and their documentation.

Each hook has a ``test_hook_<name>`` here, and a section in docs/reference/hooks.md; the last two
tests fail when a new hook lacks either.
"""

import importlib.metadata
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import anyio
import pytest

from eventsource_core import (
    ConfigurationError,
    PluginError,
    UnknownBackendError,
    hookimpl,
    hookspecs,
    open_checkpoint_repository,
    open_event_store,
    plugin_versions,
)
from eventsource_core.plugins import (
    DISABLE_ENV,
    checkpoint_stores,
    checkpoint_strategies,
    event_sources,
    get_plugin_manager,
    reset_plugin_manager,
)
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Recorder, append
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

ROOT = Path(__file__).resolve().parents[2]
HOOKS_DOC = ROOT / "docs" / "reference" / "hooks.md"
HOOK_NAMES = sorted(
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "eventsource_spec")
)


class EveryOther:
    """A third-party strategy: save once two events are unsaved."""

    per_event = True

    def due(self, pending: int, since_save: float, end_of_batch: bool) -> bool:
        return pending >= 2

    def recheck_in(self, since_save: float) -> float | None:
        return None


class RecordingCheckpoints(InMemoryCheckpointRepository):
    """Checkpoints that remember every position they were asked to save."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.saves: list[int] = []

    async def save_position(self, subscription_id, position, event_id, event_type, *, events=1):
        self.saves.append(position)
        await super().save_position(subscription_id, position, event_id, event_type, events=events)


@asynccontextmanager
async def open_recording(url: str, **options) -> AsyncIterator[RecordingCheckpoints]:
    repo = RecordingCheckpoints(**options)
    repo.url = url
    yield repo


@asynccontextmanager
async def open_recording_store(url: str, **options) -> AsyncIterator[InMemoryEventStore]:
    store = InMemoryEventStore(**options)
    store.url = url
    yield store


class ThirdPlugin:
    """Neither built in nor installed: registered by name for the test, as a user would."""

    @hookimpl
    def register_checkpoint_strategies(self, register):
        register("Every_Other", lambda config: EveryOther())

    @hookimpl
    def register_checkpoint_stores(self, register):
        register("recording", open_recording)

    @hookimpl
    def register_event_sources(self, register):
        register("recording", open_recording_store)


@pytest.fixture
def third_plugin():
    pm = get_plugin_manager()
    pm.register(ThirdPlugin(), name="third")
    try:
        yield
    finally:
        pm.unregister(name="third")


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Reload plugins under a changed environment; restore the normal set afterwards."""
    reset_plugin_manager()
    yield monkeypatch
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    reset_plugin_manager()


# -- one test per hook -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_hook_register_checkpoint_strategies(third_plugin):
    assert isinstance(checkpoint_strategies()["every_other"](SubscriptionConfig()), EveryOther)
    store = InMemoryEventStore()
    stored = await append(store, 5)
    async with open_checkpoint_repository("recording://", event_store=store) as repo:
        manager = SubscriptionManager(store, None, repo)
        config = SubscriptionConfig(checkpoint_strategy="every_other", poll_interval=0.02)
        sub = await manager.subscribe(Recorder(), config, name="P")
        async with manager:
            with anyio.fail_after(10):
                await sub.wait_for_position(5)
        assert repo.saves == [2, 4, 5], "saves at every second event, then the final one on stop"
        assert await repo.get_checkpoint("P") == stored[-1].event_id


@pytest.mark.anyio
async def test_hook_register_checkpoint_stores(third_plugin):
    assert "recording" in checkpoint_stores()
    async with open_checkpoint_repository("RECORDING://somewhere/else") as repo:
        assert isinstance(repo, RecordingCheckpoints)
        assert repo.url == "RECORDING://somewhere/else"
        await repo.save_position("P", 1, uuid4(), "A")
        assert repo.saves == [1]


@pytest.mark.anyio
async def test_hook_register_event_sources(third_plugin):
    assert "recording" in event_sources()
    async with open_event_store("recording+variant://x") as store:
        assert isinstance(store, InMemoryEventStore)
        assert store.url == "recording+variant://x"
        await append(store, 2)
        assert await store.current_position() == 2


def test_an_unregistered_plugin_contributes_nothing():
    pm = get_plugin_manager()
    pm.register(ThirdPlugin(), name="third")
    try:
        assert "every_other" in checkpoint_strategies()
    finally:
        pm.unregister(name="third")
    with pytest.raises(UnknownBackendError, match="recording://"):
        open_checkpoint_repository("recording://")
    assert "every_other" not in checkpoint_strategies()


def test_two_plugins_claiming_one_scheme_is_an_error(third_plugin):
    class Rival:
        @hookimpl
        def register_checkpoint_stores(self, register):
            register("recording", open_recording_store)

    pm = get_plugin_manager()
    pm.register(Rival(), name="rival")
    try:
        with pytest.raises(PluginError) as caught:
            open_checkpoint_repository("recording://")
        message = str(caught.value)
        assert "'third'" in message and "'rival'" in message
        assert DISABLE_ENV in message
    finally:
        pm.unregister(name="rival")


# -- loading -----------------------------------------------------------------------------------


def test_memory_plugin_is_found_through_its_entry_point():
    names = {ep.name for ep in importlib.metadata.entry_points(group="eventsource")}
    assert "memory" in names
    assert get_plugin_manager().get_plugin("memory") is not None
    assert "memory" in checkpoint_stores() and "memory" in event_sources()


def test_builtin_strategies_come_through_the_hook():
    pm = get_plugin_manager()
    assert pm.get_plugin("builtin-strategies") is not None
    assert {"after_each_event", "after_batch", "periodic"} <= set(checkpoint_strategies())


@pytest.mark.parametrize("value", ["memory", "sqlite,memory", " memory  postgres "])
def test_disable_env_blocks_a_named_plugin(fresh_plugins, value):
    fresh_plugins.setenv(DISABLE_ENV, value)
    reset_plugin_manager()
    pm = get_plugin_manager()
    assert pm.is_blocked("memory")
    assert pm.get_plugin("memory") is None
    assert "memory" not in checkpoint_stores()
    with pytest.raises(UnknownBackendError, match=r"eventsource-core\[memory\]"):
        open_event_store("memory://")


@pytest.mark.anyio
async def test_disable_env_can_block_the_builtin_strategies(fresh_plugins):
    fresh_plugins.setenv(DISABLE_ENV, "builtin-strategies")
    reset_plugin_manager()
    assert checkpoint_strategies() == {}
    manager = SubscriptionManager(InMemoryEventStore(), None, InMemoryCheckpointRepository())
    with pytest.raises(ConfigurationError, match="is not registered"):
        await manager.subscribe(Recorder(), name="P")


def test_reset_reloads_without_the_block(fresh_plugins):
    fresh_plugins.setenv(DISABLE_ENV, "memory")
    reset_plugin_manager()
    assert "memory" not in checkpoint_stores()
    fresh_plugins.delenv(DISABLE_ENV)
    reset_plugin_manager()
    assert "memory" in checkpoint_stores()


def test_plugin_versions():
    versions = plugin_versions()
    assert versions["eventsource-memory"] == importlib.metadata.version("eventsource-memory")
    assert all(isinstance(v, str) and v for v in versions.values())


# -- every hook is tested and documented -------------------------------------------------------


def test_there_are_hooks():
    assert HOOK_NAMES == [
        "register_checkpoint_stores",
        "register_checkpoint_strategies",
        "register_event_sources",
    ]


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook):
    assert callable(globals().get(f"test_hook_{hook}")), f"write test_hook_{hook} in {__file__}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_docstring_has_params_and_return(hook):
    doc = getattr(hookspecs, hook).__doc__ or ""
    assert ":param register:" in doc
    assert ":return:" in doc
    assert "versionadded" in doc


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_in_the_reference_docs(hook):
    text = HOOKS_DOC.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    [section] = [s for s in sections if s.startswith(f"{hook}\n")] or [None]
    assert section is not None, f"add a '## {hook}' section to {HOOKS_DOC}"
    assert ":param register:" in section
    assert ":return:" in section
