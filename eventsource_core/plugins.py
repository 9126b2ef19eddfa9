"""Loading plugins and looking up what they registered."""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pluggy

from . import hookspecs
from .checkpoints import CheckpointRepository
from .errors import ConfigurationError, PluginError, UnknownBackendError
from .store import EventStore

__all__ = [
    "DISABLE_ENV",
    "checkpoint_stores",
    "checkpoint_strategies",
    "event_sources",
    "get_plugin_manager",
    "open_checkpoint_repository",
    "open_event_store",
    "plugin_versions",
    "reset_plugin_manager",
]

DISABLE_ENV = "EVENTSOURCE_DISABLE_PLUGINS"

#: Which extra installs the plugin for a scheme that is not installed.
KNOWN_EXTRAS = {
    "memory": "eventsource-core[memory]",
    "sqlite": "eventsource-core[sqlite]",
    "postgresql": "eventsource-core[postgres]",
    "postgres": "eventsource-core[postgres]",
}

_manager: pluggy.PluginManager | None = None

T = TypeVar("T")


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager: blocked names first, then entry points, then built-ins."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for name in os.environ.get(DISABLE_ENV, "").replace(",", " ").split():
            pm.set_blocked(name)
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        from .subscriptions import strategies

        if not pm.is_blocked("builtin-strategies"):
            pm.register(strategies, name="builtin-strategies")
        pm.check_pending()
        _manager = pm
    return _manager


def plugin_versions() -> dict[str, str]:
    """Installed plugin distributions and their versions, for bug reports."""
    return {
        dist.project_name: dist.version for _, dist in get_plugin_manager().list_plugin_distinfo()
    }


def _collect(hook_name: str, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    owners: dict[str, str] = {}
    pm = get_plugin_manager()
    hook = getattr(pm.hook, hook_name)

    for impl in hook.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(name: str, value: Any, _owner: str = plugin_name) -> None:
            key = name.lower()
            if key in found and found[key] is not value:
                raise PluginError(
                    f"{what} {key!r} is registered by both {owners[key]!r} and {_owner!r}; "
                    f"uninstall one or block it with {DISABLE_ENV}={_owner}"
                )
            found[key], owners[key] = value, _owner

        impl.function(register=register)
    return found


def checkpoint_stores() -> dict[str, hookspecs.CheckpointStoreFactory]:
    return _collect("register_checkpoint_stores", "checkpoint store scheme")


def event_sources() -> dict[str, hookspecs.EventSourceFactory]:
    return _collect("register_event_sources", "event source scheme")


def checkpoint_strategies() -> dict[str, hookspecs.StrategyFactory]:
    return _collect("register_checkpoint_strategies", "checkpoint strategy")


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"{url!r} is not a backend URL; write one like 'memory://', "
            "'sqlite:///path/to/events.db' or 'postgresql://user@host/db'"
        )
    return urlsplit(url).scheme.lower().split("+", 1)[0]


def _lookup(url: str, factories: dict[str, T], what: str) -> T:
    scheme = _scheme(url)
    try:
        return factories[scheme]
    except KeyError:
        installed = ", ".join(f"{s}://" for s in sorted(factories)) or "none"
        hint = KNOWN_EXTRAS.get(scheme)
        todo = (
            f"install it with: pip install '{hint}'"
            if hint
            else "install a plugin that provides it, or check the URL for a typo"
        )
        raise UnknownBackendError(
            f"no installed plugin provides {what} for {scheme}:// URLs "
            f"(installed: {installed}); {todo}"
        ) from None


def open_event_store(url: str, **options: Any) -> AbstractAsyncContextManager[EventStore]:
    """``async with open_event_store("sqlite:///events.db") as store: ...``"""
    return _lookup(url, event_sources(), "an event store")(url, **options)


def open_checkpoint_repository(
    url: str, **options: Any
) -> AbstractAsyncContextManager[CheckpointRepository]:
    """``async with open_checkpoint_repository("memory://") as repo: ...``"""
    return _lookup(url, checkpoint_stores(), "a checkpoint repository")(url, **options)


def reset_plugin_manager() -> None:
    """Forget the loaded plugins, so the next lookup reloads them (after changing the env var)."""
    global _manager
    _manager = None
