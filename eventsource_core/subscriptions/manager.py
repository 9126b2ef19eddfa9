"""The manager runs every subscription of a process in one task group."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio

from ..checkpoints import CheckpointRepository
from ..errors import ConfigurationError, SubscriptionError
from ..plugins import checkpoint_strategies
from ..store import EventBus, EventSource, Notifier
from .config import SubscriptionConfig
from .service import Service
from .subscription import Subscription

__all__ = ["SubscriptionManager"]

log = logging.getLogger("eventsource_core.subscriptions")


class SubscriptionManager:
    """Catches projections up from their checkpoints and keeps them live.

    ``start()``/``stop()`` or ``async with manager:``. A projection that raises stops only its
    own subscription; the error is on :attr:`errors` and the others keep running.
    """

    def __init__(
        self,
        event_store: EventSource,
        event_bus: EventBus | None = None,
        checkpoint_repo: CheckpointRepository | None = None,
    ) -> None:
        if checkpoint_repo is None:
            raise ConfigurationError(
                "SubscriptionManager needs a checkpoint_repo to know where projections stopped; "
                "pass InMemoryCheckpointRepository() for tests"
            )
        self.event_store = event_store
        self.event_bus = event_bus
        self.checkpoint_repo = checkpoint_repo
        self._subscriptions: dict[str, Subscription] = {}
        self._service: Service | None = None
        self._unlisten: list[Callable[[], None]] = []

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subscriptions)

    @property
    def errors(self) -> dict[str, BaseException]:
        """Subscriptions that stopped on an error, by name."""
        return {n: s.error for n, s in self._subscriptions.items() if s.error is not None}

    @property
    def running(self) -> bool:
        return self._service is not None

    async def subscribe(
        self,
        projection: Any,
        config: SubscriptionConfig | None = None,
        name: str | None = None,
    ) -> Subscription:
        """Register ``projection`` under ``name`` (default: its class name).

        Each name has its own checkpoint. Subscribing while running starts it at once.
        """
        config = config or SubscriptionConfig()
        name = type(projection).__name__ if name is None else name
        if name in self._subscriptions:
            raise ConfigurationError(
                f"a subscription named {name!r} already exists; each projection needs its own "
                "name, because the name keys its checkpoint"
            )
        subscription = Subscription(
            name,
            projection,
            config,
            _policy_for(config),
            self.event_store,
            self.checkpoint_repo,
        )
        self._subscriptions[name] = subscription
        if self._service is not None:
            await self._service.start(subscription.run)
        return subscription

    async def start(self) -> None:
        """Start every subscription; returns once each has begun (catch-up goes on after).

        Subscriptions run in a service task of the manager's own, so managers can be started
        and stopped in any order, from any task.
        """
        if self._service is not None:
            raise SubscriptionError("the manager is already running; call stop() first")
        service = Service()
        await service.open()
        self._service = service
        try:
            for notifier in (self.event_bus, self.event_store):
                if isinstance(notifier, Notifier):
                    self._unlisten.append(notifier.add_listener(self._notify_all))
            for subscription in self._subscriptions.values():
                if subscription.done:
                    subscription.prepare_restart()
                await service.start(subscription.run)
        except BaseException:
            # Cancelled or failed half-way (``async with`` then never calls __aexit__): stop
            # what did start, so the manager is not left running with nobody to stop it.
            with anyio.CancelScope(shield=True):
                await self.stop()
            raise

    async def stop(self) -> None:
        """Let each subscription finish its batch, save its final checkpoint, and end.

        Called from inside a projection handler, it only asks every subscription to stop after
        its current event and returns at once; the final checkpoints are saved as they end.
        """
        service, self._service = self._service, None
        if service is None:
            return
        for unlisten in self._unlisten:
            unlisten()
        self._unlisten.clear()
        if any(s.runs_current_task() for s in self._subscriptions.values()):
            # Called from a handler: waiting would wait for that very handler. Each reader
            # stops after its current event and saves its final checkpoint on its own.
            for subscription in self._subscriptions.values():
                subscription.request_stop()
            service.request_close()
            return
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as stopping:
                for subscription in self._subscriptions.values():
                    stopping.start_soon(subscription.stop)
            await service.close()

    async def __aenter__(self) -> SubscriptionManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _notify_all(self) -> None:
        for subscription in self._subscriptions.values():
            subscription.notify()


def _policy_for(config: SubscriptionConfig) -> Any:
    strategies = checkpoint_strategies()
    try:
        factory = strategies[str(config.checkpoint_strategy)]
    except KeyError:
        raise ConfigurationError(
            f"checkpoint strategy {config.checkpoint_strategy!r} is not registered; choose one of "
            f"{', '.join(sorted(strategies))} or install the plugin that provides it"
        ) from None
    return factory(config)
