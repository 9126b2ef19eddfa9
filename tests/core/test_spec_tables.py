"""One test per row of the checkpoint tutorial's tables, on the memory backend.

Tables: the CheckpointRepository methods, CheckpointData fields, LagMetrics fields, start
options, checkpoint strategies, and the InMemory column of the comparison table.
"""

import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import anyio
import attrs
import pytest

from eventsource_core import (
    CheckpointData,
    CheckpointRepository,
    ClaimingCheckpointRepository,
    LagMetrics,
    open_checkpoint_repository,
    open_event_store,
)
from eventsource_core.subscriptions import (
    CheckpointStrategy,
    SubscriptionConfig,
    SubscriptionManager,
)
from eventsource_core.testing import Recorder, append, wait_for_checkpoint
from eventsource_memory import (
    InMemoryCheckpointRepository,
    InMemoryEventBus,
    InMemoryEventStore,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def store():
    return InMemoryEventStore()


@pytest.fixture
def repo(store):
    return InMemoryCheckpointRepository(event_store=store)


# -- "Key methods" table ---------------------------------------------------------------------


def test_methods_table_is_the_protocol():
    methods = {
        "get_checkpoint",
        "update_checkpoint",
        "get_position",
        "save_position",
        "get_lag_metrics",
        "reset_checkpoint",
        "get_all_checkpoints",
    }
    declared = {n for n in vars(CheckpointRepository) if not n.startswith("_")}
    assert methods <= declared
    assert isinstance(InMemoryCheckpointRepository(), CheckpointRepository)


async def test_method_get_checkpoint(repo):
    assert await repo.get_checkpoint("OrderProjection") is None
    event_id = uuid4()
    await repo.save_position("OrderProjection", 1, event_id, "OrderPlaced")
    assert await repo.get_checkpoint("OrderProjection") == event_id


async def test_method_update_checkpoint(repo):
    event_id = uuid4()
    await repo.update_checkpoint(
        projection_name="OrderProjection", event_id=event_id, event_type="OrderPlaced"
    )
    await repo.update_checkpoint(
        projection_name="OrderProjection", event_id=event_id, event_type="OrderPlaced"
    )
    assert await repo.get_checkpoint("OrderProjection") == event_id
    [data] = await repo.get_all_checkpoints()
    assert data.events_processed == 1


async def test_method_get_position(repo):
    assert await repo.get_position("OrderProjection") is None
    await repo.save_position("OrderProjection", 1000, uuid4(), "OrderPlaced")
    last_position = await repo.get_position("OrderProjection")
    assert last_position + 1 == 1001


async def test_method_save_position(repo):
    event_id = uuid4()
    await repo.save_position(
        subscription_id="OrderProjection",
        position=1000,
        event_id=event_id,
        event_type="OrderPlaced",
    )
    await repo.save_position("OrderProjection", 999, uuid4(), "OrderPlaced")
    assert await repo.get_position("OrderProjection") == 1000
    assert await repo.get_checkpoint("OrderProjection") == event_id


async def test_save_position_three_then_two_leaves_three(repo):
    await repo.save_position("P", 3, uuid4(), "A")
    await repo.save_position("P", 2, uuid4(), "A")
    assert await repo.get_position("P") == 3


async def test_method_get_lag_metrics(repo, store):
    stored = await append(store, 4)
    await repo.save_position("OrderProjection", 1, stored[0].event_id, stored[0].event_type)
    metrics = await repo.get_lag_metrics("OrderProjection")
    assert isinstance(metrics, LagMetrics)
    assert metrics.events_behind == 3
    assert metrics.latest_event_id == str(stored[-1].event_id)


async def test_method_reset_checkpoint(repo):
    await repo.save_position("OrderProjection", 5, uuid4(), "OrderPlaced")
    await repo.reset_checkpoint("OrderProjection")
    assert await repo.get_position("OrderProjection") is None
    assert await repo.get_checkpoint("OrderProjection") is None


async def test_method_get_all_checkpoints(repo):
    for name in ["OrderList", "CustomerStats", "DailyRevenue"]:
        await repo.save_position(name, 1, uuid4(), "OrderPlaced")
    checkpoints = await repo.get_all_checkpoints()
    assert all(isinstance(c, CheckpointData) for c in checkpoints)
    assert [c.projection_name for c in checkpoints] == [
        "CustomerStats",
        "DailyRevenue",
        "OrderList",
    ]


# -- CheckpointData fields table -------------------------------------------------------------

CHECKPOINT_FIELDS = {
    "projection_name": str,
    "last_event_id": UUID,
    "last_event_type": str,
    "last_processed_at": datetime,
    "events_processed": int,
    "global_position": int,
}


def test_checkpoint_data_has_exactly_the_spec_fields():
    assert [f.name for f in attrs.fields(CheckpointData)] == list(CHECKPOINT_FIELDS)


def test_checkpoint_data_is_built_as_the_spec_builds_it():
    data = CheckpointData(
        projection_name="OrderProjection",
        last_event_id=uuid4(),
        last_event_type="OrderPlaced",
        last_processed_at=datetime.now(UTC),
        events_processed=1500,
        global_position=1500,
    )
    assert data.events_processed == data.global_position == 1500
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        data.events_processed = 1  # type: ignore[misc]


@pytest.fixture
async def saved_checkpoint(repo):
    event_id = uuid4()
    await repo.save_position("OrderProjection", 3, event_id, "OrderPlaced", events=3)
    await repo.save_position("OrderProjection", 4, uuid4(), "OrderShipped")
    [data] = await repo.get_all_checkpoints()
    return data


@pytest.mark.parametrize(("field", "kind"), CHECKPOINT_FIELDS.items())
async def test_checkpoint_data_field(saved_checkpoint, field, kind):
    value = getattr(saved_checkpoint, field)
    assert isinstance(value, kind)
    expected = {
        "projection_name": "OrderProjection",
        "last_event_type": "OrderShipped",
        "events_processed": 4,
        "global_position": 4,
    }
    if field in expected:
        assert value == expected[field]
    if field == "last_processed_at":
        assert value.utcoffset() == timedelta(0)


async def test_checkpoint_data_optional_fields_are_none_before_any_position(repo):
    await repo.update_checkpoint("ById", uuid4(), "OrderPlaced")
    [data] = await repo.get_all_checkpoints()
    assert data.global_position is None


# -- LagMetrics fields table -----------------------------------------------------------------

LAG_FIELDS = {
    "projection_name": str,
    "last_event_id": str,
    "latest_event_id": str,
    "lag_seconds": float,
    "events_processed": int,
    "last_processed_at": str,
}


def test_lag_metrics_has_the_spec_fields_and_events_behind():
    names = [f.name for f in attrs.fields(LagMetrics)]
    assert names[: len(LAG_FIELDS)] == list(LAG_FIELDS)
    assert {"events_behind", "latest_position"} <= set(names)


@pytest.fixture
async def lagging(repo, store):
    stored = await append(store, 5)
    await repo.save_position(
        "OrderProjection", 2, stored[1].event_id, stored[1].event_type, events=2
    )
    metrics = await repo.get_lag_metrics("OrderProjection")
    return metrics, stored


@pytest.mark.parametrize(("field", "kind"), LAG_FIELDS.items())
async def test_lag_metrics_field(lagging, field, kind):
    metrics, stored = lagging
    value = getattr(metrics, field)
    assert isinstance(value, kind)
    expected = {
        "projection_name": "OrderProjection",
        "last_event_id": str(stored[1].event_id),
        "latest_event_id": str(stored[4].event_id),
        "events_processed": 2,
    }
    if field in expected:
        assert value == expected[field]
    if field == "lag_seconds":
        assert value >= 0.0
    if field == "last_processed_at":
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


async def test_lag_metrics_events_behind(lagging):
    metrics, _ = lagging
    assert (metrics.events_behind, metrics.latest_position) == (3, 5)


async def test_lag_seconds_is_zero_when_up_to_date(repo, store):
    stored = await append(store, 2)
    await repo.save_position("P", 2, stored[1].event_id, stored[1].event_type)
    metrics = await repo.get_lag_metrics("P")
    assert metrics.lag_seconds == 0.0


async def test_health_check_pattern_from_the_spec(repo, store):
    stored = await append(store, 3)
    await repo.save_position("P", 3, stored[2].event_id, stored[2].event_type)
    metrics = await repo.get_lag_metrics("P", event_types=[stored[0].event_type])
    assert metrics is not None and not metrics.lag_seconds > 60
    assert await repo.get_lag_metrics("Missing") is None


# -- start options table ---------------------------------------------------------------------


async def run_until(store, repo, config, position, *, live=0):
    projection = Recorder()
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    sub = await manager.subscribe(projection, config=config, name="OrderProjection")
    async with manager:
        more = await append(store, live) if live else []
        with anyio.fail_after(10):
            await sub.wait_for_position(position)
    return projection, more


async def test_start_option_beginning(store, repo):
    stored = await append(store, 3)
    await repo.save_position("OrderProjection", 3, stored[2].event_id, stored[2].event_type)
    projection, _ = await run_until(store, repo, SubscriptionConfig(start_from="beginning"), 3)
    assert projection.ids == [s.event_id for s in stored]


async def test_start_option_end(store, repo):
    await append(store, 3)
    projection, live = await run_until(store, repo, SubscriptionConfig(start_from="end"), 5, live=2)
    assert projection.ids == [s.event_id for s in live]


async def test_start_option_checkpoint_is_the_default(store, repo):
    assert SubscriptionConfig().start_from == "checkpoint"
    stored = await append(store, 3)
    await repo.save_position("OrderProjection", 2, stored[1].event_id, stored[1].event_type)
    projection, _ = await run_until(store, repo, SubscriptionConfig(), 3)
    assert projection.ids == [stored[2].event_id]


async def test_start_option_int(store, repo):
    stored = await append(store, 5)
    projection, _ = await run_until(store, repo, SubscriptionConfig(start_from=3), 5)
    assert projection.ids == [s.event_id for s in stored[3:]]


# -- checkpoint strategy table ---------------------------------------------------------------


def test_after_each_event_is_the_default_strategy():
    assert SubscriptionConfig().checkpoint_strategy is CheckpointStrategy.AFTER_EACH_EVENT


async def test_strategy_after_each_event(store, repo):
    await append(store, 3)
    config = SubscriptionConfig(checkpoint_strategy=CheckpointStrategy.AFTER_EACH_EVENT)
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    await manager.subscribe(Recorder(), config=config, name="P")
    async with manager:
        await wait_for_checkpoint(repo, "P", 3)


async def test_strategy_after_batch(store, repo):
    await append(store, 3)
    config = SubscriptionConfig(checkpoint_strategy=CheckpointStrategy.AFTER_BATCH)
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    await manager.subscribe(Recorder(), config=config, name="P")
    async with manager:
        await wait_for_checkpoint(repo, "P", 3)


async def test_strategy_periodic_saves_on_stop(store, repo):
    stored = await append(store, 3)
    config = SubscriptionConfig(
        checkpoint_strategy=CheckpointStrategy.PERIODIC, checkpoint_interval=3600
    )
    manager = SubscriptionManager(store, InMemoryEventBus(), repo)
    sub = await manager.subscribe(Recorder(), config=config, name="P")
    await manager.start()
    with anyio.fail_after(10):
        await sub.wait_for_position(3)
    assert await repo.get_position("P") is None
    await manager.stop()
    assert await repo.get_position("P") == 3
    assert await repo.get_checkpoint("P") == stored[-1].event_id


# -- comparison table, InMemory column ---------------------------------------------------------


async def test_inmemory_persistence_no():
    first = InMemoryCheckpointRepository()
    await first.save_position("OrderProjection", 7, uuid4(), "OrderPlaced")
    second = InMemoryCheckpointRepository()
    assert await second.get_all_checkpoints() == []
    assert await second.get_position("OrderProjection") is None
    async with open_checkpoint_repository("memory://") as opened:
        assert await opened.get_all_checkpoints() == []


async def test_inmemory_multi_process_no(repo):
    await repo.save_position("OrderProjection", 7, uuid4(), "OrderPlaced")
    assert not isinstance(repo, ClaimingCheckpointRepository)
    child = textwrap.dedent(
        """
        import anyio, json
        from eventsource_core import open_checkpoint_repository

        async def main():
            async with open_checkpoint_repository("memory://") as repo:
                print(json.dumps([c.projection_name for c in await repo.get_all_checkpoints()]))

        anyio.run(main)
        """
    )
    with anyio.fail_after(60):
        result = await anyio.run_process([sys.executable, "-c", child], check=True)
    assert json.loads(result.stdout) == [], "another process must not see this one's checkpoints"


async def test_inmemory_lag_metrics_limited_without_the_store():
    repo = InMemoryCheckpointRepository()
    event_id = uuid4()
    await repo.save_position("OrderProjection", 7, event_id, "OrderPlaced")
    metrics = await repo.get_lag_metrics("OrderProjection")
    assert metrics.lag_seconds == 0.0
    assert metrics.last_event_id == metrics.latest_event_id == str(event_id)
    assert metrics.events_behind is None and metrics.latest_position is None


async def test_inmemory_lag_metrics_real_with_the_store(store):
    repo = InMemoryCheckpointRepository(event_store=store)
    stored = await append(store, 3)
    await repo.save_position("OrderProjection", 1, stored[0].event_id, stored[0].event_type)
    metrics = await repo.get_lag_metrics("OrderProjection")
    assert metrics.events_behind == 2
    assert metrics.latest_event_id == str(stored[-1].event_id)


async def test_inmemory_setup_none():
    repo = InMemoryCheckpointRepository()
    await repo.save_position("OrderProjection", 1, uuid4(), "OrderPlaced")
    assert await repo.get_position("OrderProjection") == 1
    async with (
        open_event_store("memory://") as store,
        open_checkpoint_repository("memory://", event_store=store) as opened,
    ):
        stored = await append(store, 1)
        await opened.save_position("P", 1, stored[0].event_id, stored[0].event_type)
        assert (await opened.get_lag_metrics("P")).events_behind == 0
