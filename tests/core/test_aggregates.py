"""AggregateRoot and AggregateRepository, used exactly as the checkpoint tutorial uses them."""

from uuid import uuid4

import pytest

from eventsource_core import AggregateNotFoundError, AggregateRepository
from eventsource_memory import InMemoryEventBus, InMemoryEventStore

from .domain import Account, AccountOpened, AccountState, MoneyDeposited

pytestmark = pytest.mark.anyio


@pytest.fixture
def bus():
    return InMemoryEventBus()


@pytest.fixture
def store():
    return InMemoryEventStore()


@pytest.fixture
def repo(store, bus):
    return AggregateRepository(
        event_store=store,
        aggregate_factory=Account,
        aggregate_type="tests.core.Account",
        event_publisher=bus,
    )


def test_create_new_gives_an_empty_aggregate(repo):
    account_id = uuid4()
    account = repo.create_new(account_id)
    assert isinstance(account, Account)
    assert account.aggregate_id == account_id
    assert account.version == 0
    assert account.get_next_version() == 1
    assert account.state == AccountState(account_id=account_id)
    assert account.uncommitted_events == []


async def test_save_appends_new_events_and_publishes_them(repo, store, bus):
    account = repo.create_new(uuid4())
    account.open("ada")
    account.deposit(5)
    assert [type(e) for e in account.uncommitted_events] == [AccountOpened, MoneyDeposited]
    await repo.save(account)
    assert account.uncommitted_events == []
    assert bus.published == 2
    stored = await store.read_stream(account.aggregate_id, "tests.core.Account")
    assert [s.global_position for s in stored] == [1, 2]
    assert [s.aggregate_version for s in stored] == [1, 2]


async def test_save_without_new_events_does_nothing(repo, store, bus):
    account = repo.create_new(uuid4())
    await repo.save(account)
    assert await store.current_position() == 0
    assert bus.published == 0


async def test_load_rebuilds_state_and_version(repo):
    account = repo.create_new(uuid4())
    account.open("ada")
    await repo.save(account)
    account.deposit(5)
    account.deposit(7)
    await repo.save(account)
    loaded = await repo.load(account.aggregate_id)
    assert loaded is not account
    assert loaded.version == 3
    assert loaded.state == AccountState(account.aggregate_id, "ada", 12, True)
    assert loaded.uncommitted_events == []
    loaded.deposit(1)
    await repo.save(loaded)
    assert (await repo.load(account.aggregate_id)).state.balance == 13


async def test_exists(repo):
    account = repo.create_new(uuid4())
    assert not await repo.exists(account.aggregate_id)
    account.open("ada")
    assert not await repo.exists(account.aggregate_id), "unsaved events do not count"
    await repo.save(account)
    assert await repo.exists(account.aggregate_id)


async def test_load_of_a_missing_aggregate_errors_clearly(repo):
    missing = uuid4()
    with pytest.raises(AggregateNotFoundError) as caught:
        await repo.load(missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "use create_new() for a new aggregate" in message


def test_an_event_out_of_version_order_is_refused(repo):
    account = repo.create_new(uuid4())
    account.open("ada")
    stale = MoneyDeposited(aggregate_id=account.aggregate_id, aggregate_version=1, amount=3)
    with pytest.raises(ValueError, match=r"aggregate_version=self.get_next_version\(\)"):
        account.apply_event(stale)
    assert account.version == 1 and account.state.balance == 0


def test_domain_rules_live_in_the_aggregate(repo):
    account = repo.create_new(uuid4())
    with pytest.raises(ValueError, match="open the account first"):
        account.deposit(1)
    account.open("ada")
    with pytest.raises(ValueError, match="already opened"):
        account.open("bob")


def test_repository_needs_an_aggregate_type(store):
    with pytest.raises(ValueError, match="aggregate_type must name the aggregate"):
        AggregateRepository(store, Account, "")


async def test_repository_without_a_publisher(store):
    repo = AggregateRepository(store, Account, "tests.core.Account")
    account = repo.create_new(uuid4())
    account.open("ada")
    await repo.save(account)
    assert (await repo.load(account.aggregate_id)).version == 1
