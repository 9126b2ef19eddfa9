"""What every CheckpointRepository must do: the seven methods and their UPSERT semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ..checkpoints import MAX_NAME_LENGTH, CheckpointData, CheckpointRepository, LagMetrics
from ..store import EventStore
from .events import DEPOSITED, OPENED, WITHDRAWN
from .helpers import append

#: Names that break naive SQL, LIKE patterns, quoting or encodings.
HOSTILE_NAMES = [
    "O'Brien",
    'say "hi"',
    "x'); DROP TABLE projection_checkpoints; --",
    "100%_done",
    "back\\slash",
    "Ünïcødé ✓ 名前 🚀",
    "  padded  ",
    "semi;colon",
]

#: Clocks of a database server and this process may differ a little; this is not a speed check.
CLOCK_SLACK = timedelta(minutes=5)


class CheckpointRepositoryContract:
    """Needs a ``checkpoint_repo`` fixture yielding an empty repository that sees ``event_store``.

    Lag metrics tests append to ``event_store``, so it must be the store the repository queries.
    """

    pytestmark = pytest.mark.anyio

    # -- get_checkpoint / update_checkpoint ----------------------------------------------------

    async def test_unknown_projection_has_no_checkpoint(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        assert await checkpoint_repo.get_checkpoint("Nobody") is None
        assert await checkpoint_repo.get_position("Nobody") is None
        assert await checkpoint_repo.get_lag_metrics("Nobody") is None
        assert await checkpoint_repo.get_all_checkpoints() == []

    async def test_update_checkpoint_then_get_checkpoint(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        event_id = uuid4()
        await checkpoint_repo.update_checkpoint("OrderProjection", event_id, "OrderPlaced")
        assert await checkpoint_repo.get_checkpoint("OrderProjection") == event_id
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert data.last_event_type == "OrderPlaced"
        assert data.events_processed == 1

    async def test_update_checkpoint_is_an_idempotent_upsert(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        first, second = uuid4(), uuid4()
        await checkpoint_repo.update_checkpoint("P", first, "A")
        await checkpoint_repo.update_checkpoint("P", first, "A")
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert data.events_processed == 1, "the same event saved twice counts once"
        await checkpoint_repo.update_checkpoint("P", second, "B")
        assert await checkpoint_repo.get_checkpoint("P") == second
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.last_event_type, data.events_processed) == ("B", 2)

    async def test_update_checkpoint_keeps_the_saved_position(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        by_position, by_id = uuid4(), uuid4()
        await checkpoint_repo.save_position("P", 5, by_position, "A", events=5)
        await checkpoint_repo.update_checkpoint("P", by_id, "B")
        assert await checkpoint_repo.get_position("P") == 5
        assert await checkpoint_repo.get_checkpoint("P") == by_id
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.last_event_type, data.events_processed) == ("B", 6)

    # -- get_position / save_position ----------------------------------------------------------

    async def test_save_position_then_get_position(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        event_id = uuid4()
        await checkpoint_repo.save_position("OrderProjection", 1000, event_id, "OrderPlaced")
        assert await checkpoint_repo.get_position("OrderProjection") == 1000
        assert await checkpoint_repo.get_checkpoint("OrderProjection") == event_id

    async def test_save_position_moves_forward(self, checkpoint_repo: CheckpointRepository) -> None:
        ids = [uuid4() for _ in range(3)]
        for position, event_id in enumerate(ids, start=1):
            await checkpoint_repo.save_position("P", position, event_id, "A")
        assert await checkpoint_repo.get_position("P") == 3
        assert await checkpoint_repo.get_checkpoint("P") == ids[-1]

    async def test_save_position_never_moves_backwards(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        first, second = uuid4(), uuid4()
        await checkpoint_repo.save_position("P", 3, first, "A", events=3)
        await checkpoint_repo.save_position("P", 2, second, "B")
        assert await checkpoint_repo.get_position("P") == 3
        assert await checkpoint_repo.get_checkpoint("P") == first
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.last_event_type, data.events_processed) == ("A", 3)

    async def test_same_position_saved_twice_counts_once(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        event_id = uuid4()
        await checkpoint_repo.save_position("P", 5, event_id, "A", events=5)
        await checkpoint_repo.save_position("P", 5, event_id, "A", events=5)
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.global_position, data.events_processed) == (5, 5)

    async def test_events_processed_counts_events_not_writes(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        await checkpoint_repo.save_position("P", 1, uuid4(), "A")
        await checkpoint_repo.save_position("P", 2, uuid4(), "A")
        await checkpoint_repo.save_position("P", 12, uuid4(), "A", events=10)
        await checkpoint_repo.save_position("P", 20, uuid4(), "A", events=8)
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.global_position, data.events_processed) == (20, 20)

    # -- CheckpointData ------------------------------------------------------------------------

    async def test_checkpoint_data_has_every_field(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        event_id = uuid4()
        await checkpoint_repo.save_position("OrderProjection", 1500, event_id, "OrderPlaced")
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert isinstance(data, CheckpointData)
        assert data.projection_name == "OrderProjection"
        assert data.last_event_id == event_id
        assert data.last_event_type == "OrderPlaced"
        assert data.events_processed == 1
        assert data.global_position == 1500
        moment = data.last_processed_at
        assert isinstance(moment, datetime)
        assert moment.utcoffset() == timedelta(0), "last_processed_at must be aware UTC"
        assert abs(datetime.now(UTC) - moment) < CLOCK_SLACK

    async def test_last_processed_at_follows_the_latest_save(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        await checkpoint_repo.save_position("P", 1, uuid4(), "A")
        [before] = await checkpoint_repo.get_all_checkpoints()
        await checkpoint_repo.save_position("P", 2, uuid4(), "A")
        [after] = await checkpoint_repo.get_all_checkpoints()
        assert before.last_processed_at is not None and after.last_processed_at is not None
        assert after.last_processed_at >= before.last_processed_at

    async def test_get_all_checkpoints_is_ordered_by_name(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        for name in ["gamma", "alpha", "delta", "beta"]:
            await checkpoint_repo.save_position(name, 1, uuid4(), "A")
        names = [c.projection_name for c in await checkpoint_repo.get_all_checkpoints()]
        assert names == ["alpha", "beta", "delta", "gamma"]

    async def test_checkpoints_are_independent_per_name(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        a, b = uuid4(), uuid4()
        await checkpoint_repo.save_position("OrderList", 7, a, "A", events=7)
        await checkpoint_repo.save_position("CustomerStats", 3, b, "B", events=3)
        await checkpoint_repo.reset_checkpoint("OrderList")
        assert await checkpoint_repo.get_position("OrderList") is None
        assert await checkpoint_repo.get_position("CustomerStats") == 3
        assert await checkpoint_repo.get_checkpoint("CustomerStats") == b
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.projection_name, data.events_processed) == ("CustomerStats", 3)

    # -- reset_checkpoint ----------------------------------------------------------------------

    async def test_reset_then_resume_from_the_beginning(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        await checkpoint_repo.save_position("P", 9, uuid4(), "A", events=9)
        await checkpoint_repo.reset_checkpoint("P")
        assert await checkpoint_repo.get_position("P") is None
        assert await checkpoint_repo.get_checkpoint("P") is None
        assert await checkpoint_repo.get_lag_metrics("P") is None
        assert await checkpoint_repo.get_all_checkpoints() == []
        event_id = uuid4()
        await checkpoint_repo.save_position("P", 1, event_id, "A")
        assert await checkpoint_repo.get_position("P") == 1
        [data] = await checkpoint_repo.get_all_checkpoints()
        assert (data.last_event_id, data.events_processed) == (event_id, 1)

    async def test_reset_of_an_unknown_name_is_harmless(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        await checkpoint_repo.save_position("Kept", 2, uuid4(), "A")
        await checkpoint_repo.reset_checkpoint("Nobody")
        assert await checkpoint_repo.get_position("Kept") == 2

    # -- names ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    async def test_hostile_names_round_trip(
        self, checkpoint_repo: CheckpointRepository, name: str
    ) -> None:
        await checkpoint_repo.save_position("bystander", 1, uuid4(), "A")
        event_id = uuid4()
        await checkpoint_repo.save_position(name, 4, event_id, "A'; --")
        assert await checkpoint_repo.get_position(name) == 4
        assert await checkpoint_repo.get_checkpoint(name) == event_id
        metrics = await checkpoint_repo.get_lag_metrics(name)
        assert metrics is not None and metrics.projection_name == name
        names = {c.projection_name for c in await checkpoint_repo.get_all_checkpoints()}
        assert names == {"bystander", name}
        [data] = [
            c for c in await checkpoint_repo.get_all_checkpoints() if c.projection_name == name
        ]
        assert data.last_event_type == "A'; --"
        await checkpoint_repo.reset_checkpoint(name)
        assert await checkpoint_repo.get_position(name) is None
        assert await checkpoint_repo.get_position("bystander") == 1

    async def test_wildcard_names_match_only_themselves(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        await checkpoint_repo.save_position("abc", 1, uuid4(), "A")
        await checkpoint_repo.save_position("a_c", 2, uuid4(), "A")
        await checkpoint_repo.reset_checkpoint("%")
        await checkpoint_repo.reset_checkpoint("a_c")
        assert await checkpoint_repo.get_position("abc") == 1
        assert await checkpoint_repo.get_position("a_c") is None
        assert await checkpoint_repo.get_position("a%") is None

    async def test_empty_name_is_rejected_and_nothing_is_saved(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        with pytest.raises(ValueError, match="must not be empty"):
            await checkpoint_repo.save_position("", 1, uuid4(), "A")
        with pytest.raises(ValueError, match="must not be empty"):
            await checkpoint_repo.update_checkpoint("   ", uuid4(), "A")
        assert await checkpoint_repo.get_all_checkpoints() == []

    async def test_name_length_limit(self, checkpoint_repo: CheckpointRepository) -> None:
        longest = "n" * MAX_NAME_LENGTH
        await checkpoint_repo.save_position(longest, 1, uuid4(), "A")
        assert await checkpoint_repo.get_position(longest) == 1
        with pytest.raises(ValueError, match="at most"):
            await checkpoint_repo.save_position(longest + "n", 1, uuid4(), "A")
        names = [c.projection_name for c in await checkpoint_repo.get_all_checkpoints()]
        assert names == [longest]

    # -- get_lag_metrics -----------------------------------------------------------------------

    async def test_lag_metrics_when_behind(
        self, checkpoint_repo: CheckpointRepository, event_store: EventStore
    ) -> None:
        stored = await append(event_store, 5)
        third = stored[2]
        await checkpoint_repo.save_position("P", 3, third.event_id, third.event_type, events=3)
        metrics = await checkpoint_repo.get_lag_metrics("P")
        assert isinstance(metrics, LagMetrics)
        assert metrics.projection_name == "P"
        assert metrics.last_event_id == str(third.event_id)
        assert metrics.latest_event_id == str(stored[4].event_id)
        assert isinstance(metrics.lag_seconds, float) and metrics.lag_seconds >= 0.0
        assert metrics.events_processed == 3
        assert metrics.events_behind == 2
        assert metrics.latest_position == 5
        assert metrics.last_processed_at is not None
        moment = datetime.fromisoformat(metrics.last_processed_at)
        assert moment.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - moment) < CLOCK_SLACK

    async def test_lag_metrics_when_up_to_date(
        self, checkpoint_repo: CheckpointRepository, event_store: EventStore
    ) -> None:
        stored = await append(event_store, 3)
        last = stored[-1]
        await checkpoint_repo.save_position("P", 3, last.event_id, last.event_type, events=3)
        metrics = await checkpoint_repo.get_lag_metrics("P")
        assert metrics is not None
        assert metrics.lag_seconds == 0.0
        assert metrics.events_behind == 0
        assert metrics.last_event_id == metrics.latest_event_id == str(last.event_id)
        assert metrics.events_processed == 3

    async def test_lag_metrics_filtered_by_event_types(
        self, checkpoint_repo: CheckpointRepository, event_store: EventStore
    ) -> None:
        # positions: 1 Opened, 2 Deposited, 3 Withdrawn, 4 Deposited, 5 Withdrawn
        stored = await append(event_store, 5)
        second = stored[1]
        await checkpoint_repo.save_position("P", 2, second.event_id, second.event_type, events=2)

        deposits = await checkpoint_repo.get_lag_metrics("P", [DEPOSITED])
        assert deposits is not None
        assert deposits.events_behind == 1
        assert deposits.latest_event_id == str(stored[3].event_id)
        assert deposits.latest_position == 4
        assert deposits.lag_seconds >= 0.0

        both = await checkpoint_repo.get_lag_metrics("P", [DEPOSITED, WITHDRAWN])
        assert both is not None
        assert (both.events_behind, both.latest_position) == (3, 5)
        assert both.latest_event_id == str(stored[4].event_id)

        opened = await checkpoint_repo.get_lag_metrics("P", [OPENED])
        assert opened is not None
        assert (opened.events_behind, opened.lag_seconds) == (0, 0.0)
        assert opened.latest_event_id == str(second.event_id)

        unfiltered = await checkpoint_repo.get_lag_metrics("P")
        assert unfiltered is not None and unfiltered.events_behind == 3

    async def test_lag_metrics_of_a_checkpoint_saved_by_id_only(
        self, checkpoint_repo: CheckpointRepository, event_store: EventStore
    ) -> None:
        stored = await append(event_store, 3)
        await checkpoint_repo.update_checkpoint("P", stored[0].event_id, stored[0].event_type)
        metrics = await checkpoint_repo.get_lag_metrics("P")
        assert metrics is not None
        assert metrics.last_event_id == str(stored[0].event_id)
        assert metrics.events_processed == 1
        assert metrics.events_behind == 3, "without a position, everything counts as pending"
        assert metrics.latest_event_id == str(stored[-1].event_id)

    async def test_lag_metrics_follow_new_events(
        self, checkpoint_repo: CheckpointRepository, event_store: EventStore
    ) -> None:
        stored = await append(event_store, 2)
        await checkpoint_repo.save_position("P", 2, stored[1].event_id, stored[1].event_type)
        before = await checkpoint_repo.get_lag_metrics("P")
        assert before is not None and before.events_behind == 0
        more = await append(event_store, 4)
        after = await checkpoint_repo.get_lag_metrics("P")
        assert after is not None
        assert (after.events_behind, after.latest_position) == (4, 6)
        assert after.latest_event_id == str(more[-1].event_id)
