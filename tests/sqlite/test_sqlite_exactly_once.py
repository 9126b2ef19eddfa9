"""Exactly-once projections: the read model and the checkpoint commit in one SQLite transaction."""

from uuid import uuid4

import anyio
import pytest

from eventsource_core import DomainEvent, ProjectionFailedError, StorageError
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Deposited, Opened, Withdrawn, make_events
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

pytestmark = pytest.mark.anyio


class Balances:
    """Keeps each account's balance in a table of the same database."""

    def __init__(self, fail_at_version: int | None = None) -> None:
        self.fail_at_version = fail_at_version
        self.calls = 0

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [Opened, Deposited, Withdrawn]

    async def handle_in_transaction(self, event: DomainEvent, tx) -> None:
        self.calls += 1
        if event.aggregate_version == self.fail_at_version:
            raise RuntimeError("read model bug")
        account = str(event.aggregate_id)
        if isinstance(event, Opened):
            await tx.connection.execute_fetchall(
                "INSERT INTO balances (account, balance) VALUES (?, 0)", (account,)
            )
        else:
            delta = event.amount if isinstance(event, Deposited) else -event.amount
            await tx.connection.execute_fetchall(
                "UPDATE balances SET balance = balance + ? WHERE account = ?", (delta, account)
            )


@pytest.fixture
async def setup(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    async with SQLiteEventStore.open(url) as store, SQLiteCheckpointRepository.open(url) as repo:
        await repo.db.execute_fetchall(
            "CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)"
        )
        yield store, repo


def expected_balance(count: int) -> int:
    events = make_events(count)
    return sum(
        e.amount if isinstance(e, Deposited) else -e.amount
        for e in events
        if not isinstance(e, Opened)
    )


async def balances(repo) -> list[tuple[str, int]]:
    return [tuple(r) for r in await repo.db.execute_fetchall("SELECT * FROM balances")]


async def test_read_model_and_checkpoint_commit_together(setup):
    store, repo = setup
    events = make_events(250)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(
        Balances(), SubscriptionConfig(batch_size=40, poll_interval=0.02), name="balances"
    )
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(250)
    assert await balances(repo) == [(str(events[0].aggregate_id), expected_balance(250))]
    checkpoint = (await repo.get_all_checkpoints())[0]
    assert (checkpoint.global_position, checkpoint.events_processed) == (250, 250)


async def test_a_failing_batch_leaves_neither_read_model_nor_checkpoint(setup):
    store, repo = setup
    events = make_events(100)
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(
        Balances(fail_at_version=75),
        SubscriptionConfig(batch_size=30, poll_interval=0.02),
        name="balances",
    )
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(100)
    assert isinstance(sub.error, ProjectionFailedError)
    # Batches 1-30 and 31-60 committed; 61-90 rolled back, including events 61-74.
    assert await repo.get_position("balances") == 60
    assert await balances(repo) == [(str(events[0].aggregate_id), expected_balance(60))]

    fixed = SubscriptionManager(store, None, repo)
    sub = await fixed.subscribe(
        Balances(), SubscriptionConfig(batch_size=30, poll_interval=0.02), name="balances"
    )
    async with fixed:
        with anyio.fail_after(10):
            await sub.wait_for_position(100)
    assert await balances(repo) == [(str(events[0].aggregate_id), expected_balance(100))]
    assert (await repo.get_all_checkpoints())[0].events_processed == 100


async def failing_transaction(repo) -> None:
    async with repo.transaction() as tx:
        await tx.connection.execute_fetchall("INSERT INTO balances VALUES ('a', 1)")
        await tx.save_position("P", 5, uuid4(), "T")
        raise RuntimeError("boom")


async def test_transaction_rolls_back_on_error_and_on_cancel(setup):
    _, repo = setup
    with pytest.raises(RuntimeError, match="boom"):
        await failing_transaction(repo)
    with anyio.move_on_after(0.05):
        async with repo.transaction() as tx:
            await tx.connection.execute_fetchall("INSERT INTO balances VALUES ('b', 1)")
            await tx.save_position("P", 6, uuid4(), "T")
            await anyio.sleep(5)
    assert await balances(repo) == []
    assert await repo.get_position("P") is None
    assert not repo.db.in_transaction
    async with repo.transaction() as tx:  # the connection is usable afterwards
        await tx.save_position("P", 7, uuid4(), "T")
    assert await repo.get_position("P") == 7


async def test_transaction_save_position_never_moves_backwards(setup):
    _, repo = setup
    first = uuid4()
    async with repo.transaction() as tx:
        await tx.save_position("P", 10, first, "T", events=10)
        await tx.save_position("P", 4, uuid4(), "T", events=4)
        await tx.save_position("P", 10, first, "T", events=10)
    data = (await repo.get_all_checkpoints())[0]
    assert (data.global_position, data.last_event_id, data.events_processed) == (10, first, 10)


async def test_shared_connection_reads_inside_and_refuses_nested_writes(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    async with SQLiteEventStore.open(url) as opened:
        store = opened
        repo = SQLiteCheckpointRepository(store.db)
        events = make_events(3)
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)
        async with repo.transaction() as tx:
            stream = await store.read_stream(events[0].aggregate_id, events[0].aggregate_type)
            assert len(stream) == 3
            assert await repo.get_position("P") is None
            with pytest.raises(StorageError, match="inside an open transaction"):
                await repo.save_position("P", 1, uuid4(), "T")
            more = make_events(1, events[0].aggregate_id, start_version=4)
            with pytest.raises(StorageError, match="inside an open transaction"):
                await store.append(events[0].aggregate_id, events[0].aggregate_type, more, 3)
            await tx.save_position("P", 3, stream[-1].event_id, stream[-1].event_type)
        assert await repo.get_position("P") == 3


async def test_other_tasks_wait_for_the_transaction_on_a_shared_connection(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    async with SQLiteEventStore.open(url) as store:
        repo = SQLiteCheckpointRepository(store.db)
        await repo.ensure_schema()
        seen: list[int] = []

        async def reader() -> None:
            seen.append(await store.current_position())

        events = make_events(2)
        async with anyio.create_task_group() as tg, repo.transaction() as tx:
            await tx.connection.execute_fetchall(
                "INSERT INTO events (event_id, event_type, aggregate_id, aggregate_type, "
                "aggregate_version, occurred_at, recorded_at, payload) "
                "VALUES ('x', 'T', 'a', 'A', 1, '', '2026-01-01T00:00:00+00:00', '{}')"
            )
            tg.start_soon(reader)
            await anyio.sleep(0.05)
            assert seen == []  # the reader waits instead of seeing the uncommitted row
            await tx.connection.execute_fetchall("DELETE FROM events WHERE event_id = 'x'")
        assert seen == [0]
        await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)


@pytest.mark.parametrize("delay", [0.0, 0.0005, 0.002, 0.005])
async def test_a_transaction_cancelled_anywhere_leaves_the_connection_clean(setup, delay):
    _, repo = setup
    with anyio.move_on_after(delay):
        async with repo.transaction() as tx:
            for i in range(200):
                await tx.connection.execute_fetchall(
                    "INSERT INTO balances VALUES (?, 1)", (f"a{i}",)
                )
            await tx.save_position("P", 9, uuid4(), "T")
    assert not repo.db.in_transaction
    rows = len(await balances(repo))
    position = await repo.get_position("P")
    assert (rows, position) in ((0, None), (200, 9))  # both or neither
    await repo.save_position("Q", 1, uuid4(), "T")  # still usable
