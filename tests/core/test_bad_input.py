"""Bad input raises a specific exception whose message says what to do, and loses nothing."""

from uuid import uuid4

import attrs
import pytest

from eventsource_core import (
    AggregateRepository,
    ConcurrencyError,
    ConfigurationError,
    DomainEvent,
    DuplicateEventTypeError,
    EventCodec,
    EventRegistry,
    UnknownBackendError,
    UnknownEventTypeError,
    UnregisteredEventError,
    open_checkpoint_repository,
    open_event_store,
    register_event,
)
from eventsource_core.plugins import DISABLE_ENV, reset_plugin_manager
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_core.testing import Deposited, Recorder
from eventsource_memory import InMemoryCheckpointRepository, InMemoryEventStore

from .domain import Account


@pytest.fixture
def manager():
    store = InMemoryEventStore()
    return SubscriptionManager(store, None, InMemoryCheckpointRepository(event_store=store))


# -- subscription configuration ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["start", "BEGINNING", "latest", ""])
def test_unknown_start_from_string(value):
    with pytest.raises(ConfigurationError, match=r"not a start option; use 'beginning', 'end'"):
        SubscriptionConfig(start_from=value)


@pytest.mark.parametrize("value", [-1, -1000])
def test_negative_start_from(value):
    with pytest.raises(ConfigurationError, match="is negative; positions start at 0"):
        SubscriptionConfig(start_from=value)


@pytest.mark.parametrize("value", [1.5, None, True, [1]])
def test_start_from_of_the_wrong_type(value):
    with pytest.raises(ConfigurationError, match="start_from must be"):
        SubscriptionConfig(start_from=value)


@pytest.mark.parametrize("value", [0, -1, -100])
def test_batch_size_must_be_positive(value):
    with pytest.raises(ConfigurationError, match=r"batch_size must be a positive number"):
        SubscriptionConfig(batch_size=value)


@pytest.mark.parametrize("field", ["checkpoint_interval", "poll_interval", "stop_timeout"])
def test_intervals_must_be_positive(field):
    with pytest.raises(ConfigurationError, match=f"{field} must be a positive number"):
        SubscriptionConfig(**{field: 0})


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["", "   "])
async def test_empty_projection_name(manager, name):
    with pytest.raises(ConfigurationError, match="must not be empty; pass name="):
        await manager.subscribe(Recorder(), name=name)
    assert manager.subscriptions == {}


@pytest.mark.anyio
async def test_empty_name_in_the_repository():
    repo = InMemoryCheckpointRepository()
    with pytest.raises(ValueError, match="must not be empty"):
        await repo.save_position("", 1, uuid4(), "A")
    assert await repo.get_all_checkpoints() == []


@pytest.mark.anyio
async def test_unknown_checkpoint_strategy_name(manager):
    config = SubscriptionConfig(checkpoint_strategy="after_lunch")
    with pytest.raises(ConfigurationError) as caught:
        await manager.subscribe(Recorder(), config, name="P")
    message = str(caught.value)
    assert "'after_lunch' is not registered" in message
    assert "after_batch, after_each_event, periodic" in message
    assert manager.subscriptions == {}


@pytest.mark.parametrize("value", ["", "  ", None, 3])
def test_blank_checkpoint_strategy(value):
    with pytest.raises(ConfigurationError, match="CheckpointStrategy or a registered name"):
        SubscriptionConfig(checkpoint_strategy=value)


@pytest.mark.anyio
async def test_duplicate_subscription_name(manager):
    first = await manager.subscribe(Recorder(), name="OrderProjection")
    with pytest.raises(ConfigurationError, match="already exists; each projection needs its own"):
        await manager.subscribe(Recorder(), name="OrderProjection")
    assert manager.subscriptions == {"OrderProjection": first}


@pytest.mark.anyio
async def test_projection_without_handle(manager):
    class NotAProjection:
        pass

    with pytest.raises(ConfigurationError, match=r"define 'async def handle\(self, event\)'"):
        await manager.subscribe(NotAProjection(), name="P")


def test_manager_without_checkpoint_repo():
    with pytest.raises(ConfigurationError, match="needs a checkpoint_repo"):
        SubscriptionManager(InMemoryEventStore(), None, None)


# -- backends by URL ---------------------------------------------------------------------------


@pytest.fixture
def only_memory(monkeypatch):
    """Block the other backends, so the error for a known-but-missing scheme is predictable."""
    monkeypatch.setenv(DISABLE_ENV, "sqlite,postgres,postgresql")
    reset_plugin_manager()
    yield
    monkeypatch.delenv(DISABLE_ENV)
    reset_plugin_manager()


@pytest.mark.parametrize("opener", [open_event_store, open_checkpoint_repository])
def test_unknown_scheme_lists_installed_schemes_and_the_extra(only_memory, opener):
    with pytest.raises(UnknownBackendError) as caught:
        opener("sqlite:///tmp/events.db")
    message = str(caught.value)
    assert "sqlite://" in message
    assert "installed: memory://" in message
    assert "pip install 'eventsource-core[sqlite]'" in message


def test_unknown_scheme_without_a_known_extra():
    with pytest.raises(UnknownBackendError) as caught:
        open_event_store("cassette://somewhere")
    message = str(caught.value)
    assert "cassette://" in message and "memory://" in message
    assert "check the URL for a typo" in message


@pytest.mark.parametrize("url", ["events.db", "", "memory"])
def test_not_a_url(url):
    with pytest.raises(ConfigurationError, match="is not a backend URL; write one like"):
        open_checkpoint_repository(url)


# -- events --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unregistered_event():
    @attrs.frozen(kw_only=True)
    class Forgotten(DomainEvent):
        event_type: str = "tests.core.Forgotten"
        aggregate_type: str = "tests.core.Account"

    store = InMemoryEventStore()
    event = Forgotten(aggregate_id=uuid4())
    with pytest.raises(UnregisteredEventError) as caught:
        await store.append(event.aggregate_id, event.aggregate_type, [event], 0)
    assert "'tests.core.Forgotten'" in str(caught.value)
    assert "decorate the class with @register_event" in str(caught.value)
    assert await store.current_position() == 0


def test_event_class_without_register_event_says_so_when_built():
    class Forgotten(DomainEvent):
        event_type: str = "tests.core.ForgottenDecorator"
        aggregate_type: str = "tests.core.Account"
        note: str

    with pytest.raises(UnregisteredEventError) as caught:
        Forgotten(aggregate_id=uuid4(), note="x")
    message = str(caught.value)
    assert "Forgotten" in message
    assert "@register_event" in message


def test_subclass_of_a_registered_event_must_be_registered_too():
    class Special(Deposited):
        pass

    with pytest.raises(UnregisteredEventError, match="Special"):
        Special(aggregate_id=uuid4(), amount=1)


@pytest.mark.anyio
async def test_register_event_over_an_attrs_class_still_works():
    @register_event
    @attrs.frozen(kw_only=True)
    class Stacked(DomainEvent):
        event_type: str = "tests.core.Stacked"
        aggregate_type: str = "tests.core.Account"
        note: str

    store = InMemoryEventStore()
    event = Stacked(aggregate_id=uuid4(), note="x")
    await store.append(event.aggregate_id, event.aggregate_type, [event], 0)
    assert [s.event for s in await store.read_all()] == [event]


def test_duplicate_event_type_registration():
    registry = EventRegistry()

    class First(DomainEvent):
        event_type: str = "tests.core.Twice"
        aggregate_type: str = "tests.core.Account"

    class Second(DomainEvent):
        event_type: str = "tests.core.Twice"
        aggregate_type: str = "tests.core.Account"

    registry.register(First)
    with pytest.raises(DuplicateEventTypeError) as caught:
        registry.register(Second)
    message = str(caught.value)
    assert "'tests.core.Twice' is already registered" in message
    assert "give" in message and "different event_type" in message
    assert registry.resolve("tests.core.Twice").__qualname__.endswith("First")


def test_duplicate_registration_in_the_default_registry():
    with pytest.raises(DuplicateEventTypeError, match="already registered"):

        @register_event
        class Impostor(DomainEvent):
            event_type: str = "eventsource.testing.Deposited"
            aggregate_type: str = "eventsource.testing.Account"

    assert EventCodec().registry.resolve("eventsource.testing.Deposited") is Deposited


def test_event_without_an_event_type_default():
    with pytest.raises(TypeError, match="needs a default for event_type, for example: event_type"):

        @register_event
        class Nameless(DomainEvent):
            aggregate_type: str = "tests.core.Account"


def test_unknown_stored_event_type():
    codec = EventCodec()
    with pytest.raises(UnknownEventTypeError) as caught:
        codec.decode(
            event_id=uuid4(),
            event_type="tests.core.RenamedLongAgo",
            aggregate_id=uuid4(),
            aggregate_type="tests.core.Account",
            aggregate_version=1,
            occurred_at="2025-01-01T00:00:00+00:00",
            metadata="{}",
            payload="{}",
        )
    message = str(caught.value)
    assert "'tests.core.RenamedLongAgo' has no registered class" in message
    assert "@register_event" in message


def test_naive_occurred_at():
    from datetime import datetime

    with pytest.raises(ValueError, match="must be timezone-aware"):
        Deposited(aggregate_id=uuid4(), amount=1, occurred_at=datetime(2025, 1, 1))


# -- optimistic concurrency --------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrency_conflict_writes_nothing():
    store = InMemoryEventStore()
    repo = AggregateRepository(store, Account, "tests.core.Account")
    account = repo.create_new(uuid4())
    account.open("ada")
    await repo.save(account)

    mine = await repo.load(account.aggregate_id)
    theirs = await repo.load(account.aggregate_id)
    theirs.deposit(10)
    await repo.save(theirs)
    mine.deposit(99)
    with pytest.raises(ConcurrencyError) as caught:
        await repo.save(mine)
    assert "nothing was written" in str(caught.value)
    assert "Reload the aggregate" in str(caught.value)
    assert await store.current_position() == 2
    reloaded = await repo.load(account.aggregate_id)
    assert (reloaded.version, reloaded.state.balance) == (2, 10)
    assert len(mine.uncommitted_events) == 1, "the failed save keeps the events for a retry"


class NotAnEvent:
    pass


@pytest.mark.anyio
@pytest.mark.parametrize("entry", [NotAnEvent, int, "", 42])
async def test_subscribed_to_must_name_event_types(manager, entry):
    with pytest.raises(ConfigurationError) as caught:
        await manager.subscribe(Recorder([entry]), name="P")
    message = str(caught.value)
    assert "subscribed_to()" in message
    assert "event classes" in message
    assert manager.subscriptions == {}


@pytest.mark.anyio
async def test_subscribed_to_an_undecorated_event_class(manager):
    class Forgotten(DomainEvent):
        event_type: str = "tests.core.ForgottenInSubscribedTo"
        aggregate_type: str = "tests.core.Account"

    with pytest.raises(UnregisteredEventError, match=r"Forgotten.*@register_event"):
        await manager.subscribe(Recorder([Forgotten]), name="P")
