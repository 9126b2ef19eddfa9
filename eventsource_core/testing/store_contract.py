"""What every EventStore must do: positions, concurrency, reads, filters and round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import anyio
import attrs
import pytest

from ..errors import ConcurrencyError, InvalidAppendError, UnregisteredEventError
from ..events import DomainEvent
from ..store import Backlog, EventStore, StoredEvent
from .events import AUDITED, DEPOSITED, OPENED, WITHDRAWN, Audited, Deposited, make_events
from .helpers import append, append_to, ids


@attrs.frozen(kw_only=True)
class Unregistered(DomainEvent):
    """An attrs event never passed to @register_event, so no store may accept it."""

    event_type: str = "eventsource.testing.Unregistered"
    aggregate_type: str = "eventsource.testing.Account"


class EventStoreContract:
    """Needs an ``event_store`` fixture yielding an empty store."""

    pytestmark = pytest.mark.anyio

    # -- append and positions ------------------------------------------------------------------

    async def test_empty_store(self, event_store: EventStore) -> None:
        assert await event_store.current_position() == 0
        assert await event_store.read_all() == []
        assert await event_store.read_page(0, 10) == []
        assert await event_store.read_stream(uuid4(), "eventsource.testing.Account") == []
        assert await event_store.stream_version(uuid4(), "eventsource.testing.Account") == 0

    async def test_append_assigns_consecutive_positions(self, event_store: EventStore) -> None:
        events = make_events(3)
        stored = await event_store.append(
            events[0].aggregate_id, events[0].aggregate_type, events, 0
        )
        assert [s.global_position for s in stored] == [1, 2, 3]
        assert [s.event for s in stored] == events
        assert all(isinstance(s, StoredEvent) for s in stored)
        assert await event_store.current_position() == 3

    async def test_appends_continue_positions_across_streams(self, event_store: EventStore) -> None:
        account = uuid4()
        first = await append_to(event_store, account, 2, 0)
        other = await append(event_store, 3)
        second = await append_to(event_store, account, 2, 2)
        positions = [s.global_position for s in first + other + second]
        assert positions == [1, 2, 3, 4, 5, 6, 7]
        assert await event_store.stream_version(account, "eventsource.testing.Account") == 4
        assert await event_store.current_position() == 7

    async def test_recorded_at_is_aware_utc(self, event_store: EventStore) -> None:
        [stored] = await append(event_store, 1)
        [read] = await event_store.read_all()
        for moment in (stored.recorded_at, read.recorded_at):
            assert moment.utcoffset() == timedelta(0)
            assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5)

    # -- optimistic concurrency ----------------------------------------------------------------

    @pytest.mark.parametrize("expected", [0, 1, 3, 7])
    async def test_wrong_expected_version_raises_and_writes_nothing(
        self, event_store: EventStore, expected: int
    ) -> None:
        account = uuid4()
        await append_to(event_store, account, 2, 0)
        events = make_events(2, account, start_version=expected + 1)
        with pytest.raises(ConcurrencyError) as caught:
            await event_store.append(account, events[0].aggregate_type, events, expected)
        assert (caught.value.expected, caught.value.actual) == (expected, 2)
        assert "nothing was written" in str(caught.value)
        assert await event_store.current_position() == 2
        assert await event_store.stream_version(account, events[0].aggregate_type) == 2
        assert len(await event_store.read_stream(account, events[0].aggregate_type)) == 2

    async def test_racing_appends_to_one_stream_let_exactly_one_win(
        self, event_store: EventStore
    ) -> None:
        account = uuid4()
        outcomes: list[str] = []

        async def attempt() -> None:
            try:
                await append_to(event_store, account, 3, 0)
                outcomes.append("won")
            except ConcurrencyError:
                outcomes.append("conflict")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(attempt)
        assert sorted(outcomes) == ["conflict"] * 4 + ["won"]
        stored = await event_store.read_all()
        # A loser may have taken positions before it lost, leaving rolled-back holes, so the
        # winner's positions need not be 1, 2, 3; they only have to rise in version order.
        assert [s.aggregate_version for s in stored] == [1, 2, 3]
        positions = [s.global_position for s in stored]
        assert positions == sorted(set(positions))
        assert await event_store.current_position() == positions[-1]

    async def test_concurrent_appends_to_different_streams_keep_positions_dense(
        self, event_store: EventStore
    ) -> None:
        results: list[list[StoredEvent]] = []

        async def writer() -> None:
            account = uuid4()
            for version in range(0, 6, 2):
                results.append(await append_to(event_store, account, 2, version))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(writer)
        positions = sorted(s.global_position for batch in results for s in batch)
        assert positions == list(range(1, 61))
        everything = await event_store.read_all()
        assert [s.global_position for s in everything] == list(range(1, 61))
        by_id = {s.event_id: s.global_position for batch in results for s in batch}
        assert {s.event_id: s.global_position for s in everything} == by_id
        assert await event_store.current_position() == 60

    async def test_append_refuses_events_of_another_stream_and_writes_nothing(
        self, event_store: EventStore
    ) -> None:
        account, other = uuid4(), uuid4()
        events = make_events(1, account) + make_events(2, other, start_version=2)
        with pytest.raises(InvalidAppendError, match="append each aggregate's events"):
            await event_store.append(account, events[0].aggregate_type, events, 0)
        assert await event_store.current_position() == 0
        assert await event_store.stream_version(account, events[0].aggregate_type) == 0

    async def test_append_refuses_skipped_versions_and_writes_nothing(
        self, event_store: EventStore
    ) -> None:
        account = uuid4()
        await append_to(event_store, account, 1, 0)
        gap = make_events(1, account, start_version=3)
        with pytest.raises(InvalidAppendError, match="get_next_version"):
            await event_store.append(account, gap[0].aggregate_type, gap, 1)
        assert await event_store.current_position() == 1
        assert await event_store.stream_version(account, gap[0].aggregate_type) == 1

    # -- registration --------------------------------------------------------------------------

    async def test_unregistered_event_is_rejected_and_nothing_is_written(
        self, event_store: EventStore
    ) -> None:
        account = uuid4()
        good = make_events(1, account)[0]
        bad = Unregistered(aggregate_id=account, aggregate_version=2)
        with pytest.raises(UnregisteredEventError, match="@register_event"):
            await event_store.append(account, good.aggregate_type, [good, bad], 0)
        assert await event_store.current_position() == 0
        assert await event_store.stream_version(account, good.aggregate_type) == 0

    # -- read_stream ---------------------------------------------------------------------------

    async def test_read_stream_returns_one_stream_in_version_order(
        self, event_store: EventStore
    ) -> None:
        account = uuid4()
        mine = await append_to(event_store, account, 2, 0)
        await append(event_store, 2)
        mine += await append_to(event_store, account, 3, 2)
        read = await event_store.read_stream(account, "eventsource.testing.Account")
        assert [s.aggregate_version for s in read] == [1, 2, 3, 4, 5]
        assert ids(read) == ids(mine)
        assert [s.global_position for s in read] == [1, 2, 5, 6, 7]
        after = await event_store.read_stream(account, "eventsource.testing.Account", 3)
        assert [s.aggregate_version for s in after] == [4, 5]

    # -- read_page / read_all ------------------------------------------------------------------

    async def test_read_page_honours_after_and_limit(self, event_store: EventStore) -> None:
        stored = await append(event_store, 10)
        page = await event_store.read_page(3, 4)
        assert [s.global_position for s in page] == [4, 5, 6, 7]
        assert ids(page) == ids(stored[3:7])
        assert [s.global_position for s in await event_store.read_page(8, 100)] == [9, 10]
        assert await event_store.read_page(10, 5) == []
        assert await event_store.read_page(50, 5) == []

    async def test_read_page_filters_before_limiting(self, event_store: EventStore) -> None:
        # positions: 1 Opened, then Deposited at even and Withdrawn at odd positions
        await append(event_store, 12)
        deposits = await event_store.read_page(0, 3, [DEPOSITED])
        assert [s.global_position for s in deposits] == [2, 4, 6]
        assert all(s.event_type == DEPOSITED for s in deposits)
        later = await event_store.read_page(6, 10, [DEPOSITED])
        assert [s.global_position for s in later] == [8, 10, 12]
        mixed = await event_store.read_page(0, 4, [OPENED, WITHDRAWN])
        assert [s.global_position for s in mixed] == [1, 3, 5, 7]
        assert await event_store.read_page(0, 10, ["eventsource.testing.NoSuchType"]) == []

    async def test_an_empty_type_filter_matches_nothing(self, event_store: EventStore) -> None:
        await append(event_store, 3)
        assert await event_store.read_page(0, 10, []) == []
        assert [s async for s in event_store.read_all(event_types=[])] == []
        assert (await event_store.backlog(0, [])).events_behind == 0

    async def test_hostile_type_names_in_a_filter_match_nothing(
        self, event_store: EventStore
    ) -> None:
        await append(event_store, 3)
        hostile = ["x' OR '1'='1", "%", "eventsource.testing.%", "_", "') --", "名前"]
        assert await event_store.read_page(0, 10, hostile) == []
        assert (await event_store.backlog(0, hostile)).events_behind == 0

    async def test_read_all_awaited_returns_one_page(self, event_store: EventStore) -> None:
        await append(event_store, 7)
        assert [s.global_position for s in await event_store.read_all()] == list(range(1, 8))
        some = await event_store.read_all(after_position=2, limit=3)
        assert [s.global_position for s in some] == [3, 4, 5]
        filtered = await event_store.read_all(limit=2, event_types=[WITHDRAWN])
        assert [s.global_position for s in filtered] == [3, 5]

    async def test_read_all_async_for_reads_everything_after(self, event_store: EventStore) -> None:
        stored = await append(event_store, 25)
        seen = [s async for s in event_store.read_all(after_position=4, limit=7)]
        assert ids(seen) == ids(stored[4:])
        positions = [s.global_position async for s in event_store.read_all(event_types=[DEPOSITED])]
        assert positions == list(range(2, 26, 2))
        assert [s async for s in event_store.read_all(after_position=25)] == []

    async def test_read_all_rejects_nonsense_bounds(self, event_store: EventStore) -> None:
        with pytest.raises(ValueError, match="after_position"):
            event_store.read_all(after_position=-1)
        with pytest.raises(ValueError, match="limit"):
            event_store.read_all(limit=0)

    # -- current position and backlog ----------------------------------------------------------

    async def test_current_position_follows_appends(self, event_store: EventStore) -> None:
        await append(event_store, 4)
        assert await event_store.current_position() == 4
        await append(event_store, 1)
        assert await event_store.current_position() == 5

    async def test_backlog(self, event_store: EventStore) -> None:
        stored = await append(event_store, 6)
        everything = await event_store.backlog(0)
        assert everything.events_behind == 6
        assert everything.latest_event_id == stored[-1].event_id
        assert everything.latest_position == 6
        assert everything.oldest_recorded_at == stored[0].recorded_at
        rest = await event_store.backlog(4)
        assert (rest.events_behind, rest.latest_position) == (2, 6)
        assert rest.oldest_recorded_at == stored[4].recorded_at
        deposits = await event_store.backlog(2, [DEPOSITED])
        assert (deposits.events_behind, deposits.latest_position) == (2, 6)
        assert deposits.latest_event_id == stored[5].event_id
        assert await event_store.backlog(6) == Backlog(0, None, None, None)
        assert await event_store.backlog(0, ["eventsource.testing.NoSuchType"]) == Backlog(
            0, None, None, None
        )

    # -- round trip ----------------------------------------------------------------------------

    async def test_every_field_round_trips(self, event_store: EventStore) -> None:
        account = uuid4()
        plus_two = timezone(timedelta(hours=2))
        event = Audited(
            event_id=uuid4(),
            aggregate_id=account,
            aggregate_version=1,
            occurred_at=datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
            metadata={
                "correlation_id": str(uuid4()),
                "user": "Zoë",
                "nested": {"ids": [1, 2, 3], "flag": True, "none": None},
            },
            auditor_id=uuid4(),
            audited_at=datetime(2025, 1, 1, 12, 0, 0, 654321, tzinfo=plus_two),
            note="quotes ' \" and unicode ✓ 名前",
            score=0.1 + 0.2,
            tags=["a", "b", ""],
            optional_ref=None,
        )
        await event_store.append(account, event.aggregate_type, [event], 0)
        [from_stream] = await event_store.read_stream(account, event.aggregate_type)
        [from_log] = await event_store.read_all()
        [from_filter] = await event_store.read_page(0, 1, [AUDITED])
        for stored in (from_stream, from_log, from_filter):
            read = stored.event
            assert isinstance(read, Audited)
            assert read == event
            assert isinstance(read.event_id, UUID) and isinstance(read.auditor_id, UUID)
            assert read.occurred_at.utcoffset() == timedelta(0)
            assert read.audited_at == event.audited_at
            assert read.audited_at.utcoffset() is not None
            assert dict(read.metadata) == dict(event.metadata)

    async def test_events_come_back_as_their_registered_classes(
        self, event_store: EventStore
    ) -> None:
        await append(event_store, 3)
        [_, second, _] = await event_store.read_all()
        assert isinstance(second.event, Deposited)
        assert second.event.amount == 2
        assert second.event_type == DEPOSITED
