"""Exactly-once: the read model and the checkpoint commit in one PostgreSQL transaction."""

from __future__ import annotations

import anyio
import pytest

from eventsource_core import DomainEvent, ProjectionFailedError
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Deposited, make_events
from eventsource_postgres import (
    PostgreSQLCheckpointRepository,
    PostgreSQLCheckpointTransaction,
    PostgreSQLEventStore,
)


class Balances:
    """Writes deposits to a table through the transaction's connection; can fail on demand."""

    def __init__(self, schema: str, fail_at_version: int | None = None) -> None:
        self.table = f"{schema}.balances"
        self.fail_at_version = fail_at_version

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [Deposited]

    async def handle_in_transaction(
        self, event: DomainEvent, tx: PostgreSQLCheckpointTransaction
    ) -> None:
        assert isinstance(event, Deposited)
        await tx.connection.execute(
            f"INSERT INTO {self.table} (account, total) VALUES ($1, $2) "
            "ON CONFLICT (account) DO UPDATE SET total = balances.total + EXCLUDED.total",
            event.aggregate_id,
            event.amount,
        )
        if event.aggregate_version == self.fail_at_version:
            raise RuntimeError("the read model refuses this event")


@pytest.mark.anyio
async def test_read_model_and_checkpoint_commit_or_roll_back_together(pg_pool, pg_schema) -> None:
    store = PostgreSQLEventStore(pg_pool, schema=pg_schema)
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema)
    await store.initialize()
    await pg_pool.execute(
        f"CREATE TABLE {pg_schema}.balances (account uuid PRIMARY KEY, total int)"
    )
    events = make_events(9)  # deposits at versions 2, 4, 6, 8
    await store.append(events[0].aggregate_id, events[0].aggregate_type, events, 0)

    config = SubscriptionConfig(batch_size=1, poll_interval=0.05)
    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Balances(pg_schema, fail_at_version=6), config, name="B")
    async with manager:
        with anyio.fail_after(10):
            while sub.error is None:
                await anyio.sleep(0.02)
    assert isinstance(sub.error, ProjectionFailedError)
    # versions 2 and 4 committed with their checkpoint; 6 rolled back with its checkpoint
    assert await pg_pool.fetchval(f"SELECT total FROM {pg_schema}.balances") == 2 + 4
    assert await repo.get_position("B") == 4

    manager = SubscriptionManager(store, None, repo)
    sub = await manager.subscribe(Balances(pg_schema), config, name="B")
    async with manager:
        with anyio.fail_after(10):
            await sub.wait_for_position(8)
    assert await pg_pool.fetchval(f"SELECT total FROM {pg_schema}.balances") == 2 + 4 + 6 + 8
    checkpoint = await repo.get_all_checkpoints()
    assert checkpoint[0].global_position == 8
    assert checkpoint[0].events_processed == 4


@pytest.mark.anyio
async def test_transaction_rolls_back_the_checkpoint_on_error(pg_pool, pg_schema) -> None:
    repo = PostgreSQLCheckpointRepository(pg_pool, schema=pg_schema, claims=False)
    event = make_events(1)[0]

    async def fail_inside() -> None:
        async with repo.transaction() as tx:
            await tx.save_position("P", 1, event.event_id, event.event_type)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert await repo.get_position("P") is None
    async with repo.transaction() as tx:
        await tx.save_position("P", 1, event.event_id, event.event_type)
    assert await repo.get_position("P") == 1
