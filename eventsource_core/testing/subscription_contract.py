"""Subscriptions behave the same on every backend: start options, strategies, failures, races.

Waits use ``sub.wait_for_position`` or poll the repository, each bounded by ``fail_after``;
no assertion depends on how fast a backend is.
"""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import anyio
import pytest

from ..checkpoints import CheckpointRepository
from ..errors import ProjectionFailedError
from ..events import DomainEvent
from ..store import EventStore
from ..subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from .events import DEPOSITED, WITHDRAWN, Deposited, Withdrawn
from .helpers import WAIT, FailingRecorder, Recorder, append, ids, wait_for_checkpoint

STRATEGIES = [s.value for s in CheckpointStrategy]


def config(**options: Any) -> SubscriptionConfig:
    """Settings that keep the suite quick on backends that rely on polling."""
    options.setdefault("poll_interval", 0.02)
    return SubscriptionConfig(**options)


class CheckpointObserver(Recorder):
    """Notes the saved checkpoint as each event arrives, to see when a strategy saves."""

    def __init__(self, repo: CheckpointRepository, name: str) -> None:
        super().__init__()
        self.repo = repo
        self.name = name
        self.seen: list[int | None] = []

    async def handle(self, event: DomainEvent) -> None:
        self.seen.append(await self.repo.get_position(self.name))
        await super().handle(event)


class BatchRecorder:
    """A projection that prefers whole batches."""

    def __init__(self, fail_on: UUID | None = None) -> None:
        self.batches: list[list[DomainEvent]] = []
        self.fail_on = fail_on

    def subscribed_to(self) -> None:
        return None

    async def handle(self, event: DomainEvent) -> None:
        raise AssertionError("handle_batch must be preferred over handle")

    async def handle_batch(self, events: list[DomainEvent]) -> None:
        if any(e.event_id == self.fail_on for e in events):
            raise RuntimeError("batch projection bug")
        self.batches.append(list(events))


class Hanging(Recorder):
    """Never returns from one event, so only stop()'s timeout can end the subscription."""

    def __init__(self, hang_on: UUID) -> None:
        super().__init__()
        self.hang_on = hang_on
        self.reached = anyio.Event()

    async def handle(self, event: DomainEvent) -> None:
        if event.event_id == self.hang_on:
            self.reached.set()
            await anyio.sleep_forever()
        await super().handle(event)


class SubscriptionContract:
    """Needs ``event_store`` and ``checkpoint_repo`` fixtures (the repo sees the store)."""

    pytestmark = pytest.mark.anyio

    def manager(self, store: EventStore, repo: CheckpointRepository) -> SubscriptionManager:
        """A fresh manager; override to add a bus. Without one, wake-ups come from the store
        (if it is a Notifier) or from polling every 20 ms."""
        return SubscriptionManager(store, None, repo)

    # -- catch-up and live ---------------------------------------------------------------------

    async def test_catches_up_then_follows_live(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        history = await append(event_store, 5)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
                live = await append(event_store, 2)
                await sub.wait_for_position(7)
        assert projection.ids == ids(history + live)
        assert await checkpoint_repo.get_position("R") == 7

    async def test_appends_racing_the_switch_to_live_are_handled_once_in_order(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 40)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(batch_size=3), name="R")

        async def writer() -> None:
            for _ in range(30):
                await append(event_store, 1)
                await anyio.lowlevel.checkpoint()

        async with manager:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(writer)
                await sub.wait_for_position(70)
        everything = await event_store.read_all()
        assert len(projection.handled) == 70
        assert projection.ids == ids(everything)
        assert await checkpoint_repo.get_position("R") == 70

    async def test_subscribing_while_running_starts_at_once(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 3)
        first, late = Recorder(), Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(first, config(), name="First")
        async with manager:
            late_sub = await manager.subscribe(late, config(), name="Late")
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(3)
                await late_sub.wait_for_position(3)
        assert first.ids == late.ids == ids(stored)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    async def test_restarts_while_writers_append_handle_each_event_once(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, strategy: str
    ) -> None:
        rng = random.Random(f"restarts-{strategy}")
        projection = Recorder()

        def settings() -> SubscriptionConfig:
            return config(
                checkpoint_strategy=strategy,
                batch_size=rng.randint(1, 7),
                checkpoint_interval=rng.choice([0.01, 3600]),
            )

        async def writer() -> None:
            for _ in range(40):
                await append(event_store, rng.randint(1, 3))
                await anyio.lowlevel.checkpoint()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                for _ in range(8):
                    manager = self.manager(event_store, checkpoint_repo)
                    await manager.subscribe(projection, settings(), name="R")
                    async with manager:
                        for _ in range(rng.randint(0, 20)):
                            await anyio.lowlevel.checkpoint()
            last = await event_store.current_position()
            manager = self.manager(event_store, checkpoint_repo)
            sub = await manager.subscribe(projection, settings(), name="R")
            async with manager:
                await sub.wait_for_position(last)
        assert projection.ids == ids(await event_store.read_all())
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.global_position, data.events_processed) == (last, last)

    # -- start options -------------------------------------------------------------------------

    async def test_start_from_beginning_replays_history_past_a_checkpoint(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        await checkpoint_repo.save_position("R", 3, stored[2].event_id, stored[2].event_type)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(start_from="beginning"), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert projection.ids == ids(stored)
        assert await checkpoint_repo.get_position("R") == 5

    async def test_start_from_end_skips_history_and_sees_the_next_append(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 3)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(start_from="end"), name="R")
        async with manager:
            live = await append(event_store, 2)
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert projection.ids == ids(live)
        assert await checkpoint_repo.get_position("R") == 5

    async def test_start_from_checkpoint_is_the_default_and_resumes(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        await checkpoint_repo.save_position("R", 2, stored[1].event_id, stored[1].event_type)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config()
        assert cfg.start_from == "checkpoint"
        sub = await manager.subscribe(projection, cfg, name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert projection.ids == ids(stored[2:])

    async def test_start_from_checkpoint_without_one_begins_at_the_beginning(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 4)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(start_from="checkpoint"), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(4)
        assert projection.ids == ids(stored)

    @pytest.mark.parametrize("start", [0, 1, 3, 5])
    async def test_start_from_position_n_handles_n_plus_one_first(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, start: int
    ) -> None:
        stored = await append(event_store, 5)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(start_from=start), name="R")
        async with manager:
            more = await append(event_store, 1)
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(6)
        assert projection.ids == ids(stored[start:] + more)

    async def test_start_from_position_before_the_checkpoint_rewinds(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        await checkpoint_repo.save_position("R", 5, stored[4].event_id, stored[4].event_type)
        projection = Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(start_from=2), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert projection.ids == ids(stored[2:])
        assert await checkpoint_repo.get_position("R") == 5

    # -- strategies ----------------------------------------------------------------------------

    async def test_after_each_event_saves_before_the_next_event(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 5)
        projection = CheckpointObserver(checkpoint_repo, "R")
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT)
        await manager.subscribe(projection, cfg, name="R")
        async with manager:
            await wait_for_checkpoint(checkpoint_repo, "R", 5)
        assert projection.seen == [None, 1, 2, 3, 4]

    async def test_after_batch_saves_once_per_batch(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 5)
        projection = CheckpointObserver(checkpoint_repo, "R")
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(checkpoint_strategy=CheckpointStrategy.AFTER_BATCH, batch_size=2)
        await manager.subscribe(projection, cfg, name="R")
        async with manager:
            await wait_for_checkpoint(checkpoint_repo, "R", 5)
        assert projection.seen == [None, None, 2, 2, 4]

    async def test_periodic_does_not_save_before_its_interval(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 5)
        projection = CheckpointObserver(checkpoint_repo, "R")
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(checkpoint_strategy=CheckpointStrategy.PERIODIC, checkpoint_interval=3600)
        sub = await manager.subscribe(projection, cfg, name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
            assert await checkpoint_repo.get_position("R") is None
        assert projection.seen == [None] * 5
        assert await checkpoint_repo.get_position("R") == 5

    async def test_periodic_saves_while_idle_once_the_interval_passed(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 5)
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(checkpoint_strategy=CheckpointStrategy.PERIODIC, checkpoint_interval=0.05)
        await manager.subscribe(Recorder(), cfg, name="R")
        async with manager:
            await wait_for_checkpoint(checkpoint_repo, "R", 5)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    async def test_stop_saves_the_final_checkpoint(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, strategy: str
    ) -> None:
        stored = await append(event_store, 5)
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(checkpoint_strategy=strategy, batch_size=2, checkpoint_interval=3600)
        sub = await manager.subscribe(Recorder(), cfg, name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert sub.state is SubscriptionState.STOPPED
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert data.global_position == 5
        assert data.last_event_id == stored[-1].event_id
        assert data.events_processed == 5, "events_processed counts events, not saves"

    @pytest.mark.parametrize("strategy", STRATEGIES)
    async def test_restart_resumes_after_the_checkpoint(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, strategy: str
    ) -> None:
        await append(event_store, 5)
        cfg = config(checkpoint_strategy=strategy, checkpoint_interval=3600)
        first = self.manager(event_store, checkpoint_repo)
        sub = await first.subscribe(Recorder(), cfg, name="R")
        async with first:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        more = await append(event_store, 3)
        projection = Recorder()
        second = self.manager(event_store, checkpoint_repo)
        sub = await second.subscribe(projection, cfg, name="R")
        async with second:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(8)
        assert projection.ids == ids(more)
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.global_position, data.events_processed) == (8, 8)

    # -- several projections, filters, batches -------------------------------------------------

    async def test_projections_keep_independent_checkpoints(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        deposits, everything = Recorder([Deposited]), Recorder()
        manager = self.manager(event_store, checkpoint_repo)
        dep_sub = await manager.subscribe(deposits, config(), name="Deposits")
        all_sub = await manager.subscribe(everything, config(batch_size=2), name="Everything")
        async with manager:
            with anyio.fail_after(WAIT):
                await dep_sub.wait_for_position(4)
                await all_sub.wait_for_position(5)
        assert deposits.ids == [stored[1].event_id, stored[3].event_id]
        assert everything.ids == ids(stored)
        saved = {c.projection_name: c for c in await checkpoint_repo.get_all_checkpoints()}
        assert (saved["Deposits"].global_position, saved["Deposits"].events_processed) == (4, 2)
        assert (saved["Everything"].global_position, saved["Everything"].events_processed) == (
            5,
            5,
        )

        await checkpoint_repo.reset_checkpoint("Everything")
        rebuilt, resumed = Recorder(), Recorder([Deposited])
        again = self.manager(event_store, checkpoint_repo)
        all_sub = await again.subscribe(rebuilt, config(), name="Everything")
        dep_sub = await again.subscribe(resumed, config(), name="Deposits")
        async with again:
            more = await append(event_store, 2)
            with anyio.fail_after(WAIT):
                await all_sub.wait_for_position(7)
                await dep_sub.wait_for_position(7)
        assert rebuilt.ids == ids(stored + more)
        assert resumed.ids == [more[1].event_id]

    @pytest.mark.parametrize("as_names", [False, True])
    async def test_subscribed_to_filters_event_types(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, as_names: bool
    ) -> None:
        stored = await append(event_store, 7)
        types: list[Any] = [DEPOSITED, WITHDRAWN] if as_names else [Deposited, Withdrawn]
        projection = Recorder(types)
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(batch_size=2), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(7)
        assert projection.ids == ids(stored[1:])
        assert {type(e) for e in projection.handled} == {Deposited, Withdrawn}

    async def test_handle_batch_receives_whole_batches(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        projection = BatchRecorder()
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(batch_size=2), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert [len(b) for b in projection.batches] == [2, 2, 1]
        assert [e.event_id for b in projection.batches for e in b] == ids(stored)
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.global_position, data.events_processed) == (5, 5)

    # -- failures ------------------------------------------------------------------------------

    @pytest.mark.parametrize("strategy", STRATEGIES)
    async def test_failing_handler_stops_only_its_subscription(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository, strategy: str
    ) -> None:
        stored = await append(event_store, 5)
        third = stored[2]
        broken, healthy = FailingRecorder({third.event_id}), Recorder()
        cfg = config(checkpoint_strategy=strategy, checkpoint_interval=3600)
        manager = self.manager(event_store, checkpoint_repo)
        bad = await manager.subscribe(broken, cfg, name="Broken")
        good = await manager.subscribe(healthy, cfg, name="Healthy")
        async with manager:
            with anyio.fail_after(WAIT):
                await bad.wait_for_position(5)
                assert bad.done and bad.state is SubscriptionState.FAILED
                live = await append(event_store, 2)
                await good.wait_for_position(7)
            assert set(manager.errors) == {"Broken"}
            error = manager.errors["Broken"]
            assert isinstance(error, ProjectionFailedError)
            assert (error.position, error.event_type) == (3, third.event_type)
            assert isinstance(error.__cause__, RuntimeError)
            assert "start the subscription again" in str(error)
            assert await checkpoint_repo.get_position("Broken") == 2
        assert broken.ids == ids(stored[:2])
        assert healthy.ids == ids(stored + live)
        assert await checkpoint_repo.get_position("Broken") == 2
        assert await checkpoint_repo.get_position("Healthy") == 7

        fixed = Recorder()
        restarted = self.manager(event_store, checkpoint_repo)
        sub = await restarted.subscribe(fixed, cfg, name="Broken")
        async with restarted:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(7)
        assert fixed.ids == ids(stored[2:] + live)
        assert restarted.errors == {}

    async def test_failing_batch_keeps_the_checkpoint_before_the_batch(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        projection = BatchRecorder(fail_on=stored[2].event_id)
        manager = self.manager(event_store, checkpoint_repo)
        sub = await manager.subscribe(projection, config(batch_size=2), name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await sub.wait_for_position(5)
        assert sub.state is SubscriptionState.FAILED
        assert isinstance(manager.errors["R"], ProjectionFailedError)
        assert [e.event_id for b in projection.batches for e in b] == ids(stored[:2])
        assert await checkpoint_repo.get_position("R") == 2

    async def test_stop_cancels_a_handler_that_never_finishes(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        stored = await append(event_store, 5)
        projection = Hanging(stored[2].event_id)
        manager = self.manager(event_store, checkpoint_repo)
        cfg = config(stop_timeout=0.05, checkpoint_strategy=CheckpointStrategy.PERIODIC)
        sub = await manager.subscribe(projection, cfg, name="R")
        async with manager:
            with anyio.fail_after(WAIT):
                await projection.reached.wait()
        assert sub.done and sub.state is SubscriptionState.STOPPED
        assert projection.ids == ids(stored[:2])
        assert await checkpoint_repo.get_position("R") == 2

    async def test_stop_is_idempotent_and_safe_before_start(
        self, event_store: EventStore, checkpoint_repo: CheckpointRepository
    ) -> None:
        await append(event_store, 2)
        manager = self.manager(event_store, checkpoint_repo)
        await manager.stop()
        sub = await manager.subscribe(Recorder(), config(), name="R")
        await manager.start()
        with anyio.fail_after(WAIT):
            await sub.wait_for_position(2)
        await manager.stop()
        await manager.stop()
        assert not manager.running
        assert await checkpoint_repo.get_position("R") == 2
