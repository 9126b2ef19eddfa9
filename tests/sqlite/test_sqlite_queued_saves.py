"""AFTER_EACH_EVENT queues one event's save while it handles the next.

A save queued behind an unconfirmed one applies only if that one did. These tests make one
save fail for real (a trigger refuses it) and check that nothing later covers it up.
"""

from uuid import uuid4

import pytest

from eventsource_core import DomainEvent, StorageError
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
    SubscriptionState,
)
from eventsource_core.testing import make_events
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

pytestmark = pytest.mark.anyio


def refuse_position(position: int) -> str:
    return (
        "CREATE TRIGGER refuse BEFORE UPDATE ON projection_checkpoints "
        f"WHEN NEW.global_position = {position} "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )


async def counted(repo: SQLiteCheckpointRepository, name: str) -> tuple[int | None, int]:
    rows = await repo.db.execute_fetchall(
        "SELECT global_position, events_processed FROM projection_checkpoints "
        "WHERE projection_name = ?",
        (name,),
    )
    position, processed = next(iter(rows))
    return position, processed


async def test_a_save_queued_behind_a_failed_one_is_refused_too(tmp_path):
    async with SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/c.db") as repo:
        await repo.save_position("P", 1, uuid4(), "T")
        await repo.db.execute_fetchall(refuse_position(2))

        second = repo.queue_position("P", 2, uuid4(), "T")
        third = repo.queue_position("P", 3, uuid4(), "T")  # sent before the second is confirmed
        with pytest.raises(StorageError, match="refused by the test"):
            await second
        with pytest.raises(StorageError, match="save queued before it failed"):
            await third
        # Unchained, the third would have moved the checkpoint to 3 and counted 2 events.
        assert await counted(repo, "P") == (1, 1)

        await repo.save_position("P", 3, uuid4(), "T", events=2)
        assert await counted(repo, "P") == (3, 3)


async def test_saves_queued_one_after_another_all_apply_in_order(tmp_path):
    async with SQLiteCheckpointRepository.open(f"sqlite:///{tmp_path}/c.db") as repo:
        await repo.ensure_schema()
        sends = [repo.queue_position("P", n, uuid4(), "T") for n in range(1, 51)]
        for sent in sends:
            await sent
        assert await counted(repo, "P") == (50, 50)
        # A lower position queued later leaves the checkpoint where it is, and counts nothing.
        await repo.queue_position("P", 7, uuid4(), "T")
        assert await counted(repo, "P") == (50, 50)


async def test_a_save_queued_inside_a_transaction_runs_when_awaited_after_it(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    async with SQLiteEventStore.open(url) as store:
        repo = SQLiteCheckpointRepository(store.db)
        await repo.save_position("P", 1, uuid4(), "T")
        async with repo.transaction() as tx:
            later = repo.queue_position("P", 3, uuid4(), "T")  # cannot go ahead of the COMMIT
            await tx.save_position("P", 2, uuid4(), "T")
        await later
        assert await counted(repo, "P") == (3, 3)


class Recorder:
    def __init__(self) -> None:
        self.positions: list[int] = []

    def subscribed_to(self) -> None:
        return None

    async def handle(self, event: DomainEvent) -> None:
        self.positions.append(event.aggregate_version)


async def test_a_failed_save_mid_stream_loses_no_progress_and_no_count(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    async with (
        SQLiteEventStore.open(url) as store,
        SQLiteCheckpointRepository.open(url) as repo,
    ):
        events = make_events(30)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        await repo.ensure_schema()
        await repo.db.execute_fetchall(refuse_position(13))
        config = SubscriptionConfig(
            start_from="checkpoint",
            checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT,
            batch_size=100,
            poll_interval=0.01,
        )

        first = Recorder()
        manager = SubscriptionManager(store, None, repo)
        sub = await manager.subscribe(first, config, name="P")
        async with manager:
            await sub.wait_for_position(30)
        assert sub.state is SubscriptionState.FAILED
        assert "refused by the test" in str(manager.errors["P"])
        # Event 14 was handled while the save of 13 was on its way; the final save covers both.
        assert first.positions == list(range(1, 15))
        assert await counted(repo, "P") == (14, 14)

        second = Recorder()
        manager = SubscriptionManager(store, None, repo)
        sub = await manager.subscribe(second, config, name="P")
        async with manager:
            await sub.wait_for_position(30)
        assert second.positions == list(range(15, 31))
        assert await counted(repo, "P") == (30, 30)
