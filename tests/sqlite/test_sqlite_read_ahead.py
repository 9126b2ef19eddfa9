"""The store fetches the page after a full one early; what it serves must equal a fresh read."""

import gc
import warnings

import anyio
import pytest

from eventsource_core import DomainEvent
from eventsource_core.testing import append
from eventsource_core.testing.helpers import ids
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path):
    async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as store:
        yield store


async def test_pages_served_early_equal_a_fresh_read(store, tmp_path):
    await append(store, 95)
    paged, after = [], 0
    while page := await store.read_page(after, 10):
        paged += page
        after = page[-1].global_position
    async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as fresh:
        everything = await fresh.read_page(0, 1000)
    assert ids(paged) == ids(everything)
    assert [s.global_position for s in paged] == list(range(1, 96))


async def test_a_short_page_fetched_early_is_read_again(store):
    await append(store, 13)  # the page after the first ten was fetched early with 3 events
    first = await store.read_page(0, 10)
    await anyio.sleep(0.05)  # let that early fetch finish before more events arrive
    later = await append(store, 4)
    second = await store.read_page(first[-1].global_position, 10)
    assert [s.global_position for s in second] == list(range(11, 18))
    assert ids(second)[-4:] == ids(later)


async def test_typed_pages_fetch_early_for_their_own_types(store):
    stored = await append(store, 40)  # Opened, then Deposited and Withdrawn alternating
    deposits = [s for s in stored if s.event.event_type.endswith("Deposited")]
    paged, after = [], 0
    while page := await store.read_page(after, 5, [deposits[0].event.event_type]):
        paged += page
        after = page[-1].global_position
    assert ids(paged) == ids(deposits)


async def test_reading_inside_the_connections_transaction_does_not_wait_for_itself(tmp_path):
    """A projection may read the log inside its exactly-once transaction on a shared
    connection; an early fetch queued behind that transaction must not be awaited there."""
    async with SQLiteEventStore.open(f"sqlite:///{tmp_path}/events.db") as store:
        repo = SQLiteCheckpointRepository(store.db)
        await repo.ensure_schema()
        await append(store, 30)
        async with repo.transaction() as tx:
            with anyio.fail_after(5):
                first = await store.read_page(0, 10)
                inside = await store.read_page(first[-1].global_position, 10)
            await tx.save_position("p", inside[-1].global_position, inside[-1].event_id, "x")
        assert [s.global_position for s in inside] == list(range(11, 21))
        assert await repo.get_position("p") == 20


async def test_closing_with_an_early_fetch_pending_is_quiet(tmp_path):
    url = f"sqlite:///{tmp_path}/events.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with SQLiteEventStore.open(url) as store:
            await append(store, 50)
            page = await store.read_page(0, 10)  # starts fetching positions 11..20
        gc.collect()
    assert len(page) == 10
    async with SQLiteEventStore.open(url) as again:
        assert await again.current_position() == 50


async def test_events_keep_their_types_through_early_pages(store):
    await append(store, 25)
    page = await store.read_page(10, 10)
    nxt = await store.read_page(page[-1].global_position, 10)
    assert all(isinstance(s.event, DomainEvent) for s in page + nxt)
    assert [s.event.aggregate_version for s in nxt] == list(range(21, 26))
