"""A small aggregate for the core tests, with event names no other test module uses."""

from uuid import UUID

import attrs

from eventsource_core import AggregateRoot, DomainEvent, register_event


@register_event
class AccountOpened(DomainEvent):
    event_type: str = "tests.core.AccountOpened"
    aggregate_type: str = "tests.core.Account"
    owner: str


@register_event
class MoneyDeposited(DomainEvent):
    event_type: str = "tests.core.MoneyDeposited"
    aggregate_type: str = "tests.core.Account"
    amount: int


@attrs.frozen
class AccountState:
    account_id: UUID
    owner: str = ""
    balance: int = 0
    open: bool = False


class Account(AggregateRoot[AccountState]):
    aggregate_type = "tests.core.Account"

    def _get_initial_state(self) -> AccountState:
        return AccountState(account_id=self.aggregate_id)

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, AccountOpened):
            self._state = attrs.evolve(self.state, owner=event.owner, open=True)
        elif isinstance(event, MoneyDeposited):
            self._state = attrs.evolve(self.state, balance=self.state.balance + event.amount)

    def open(self, owner: str) -> None:
        if self.version > 0:
            raise ValueError("account already opened")
        self.apply_event(
            AccountOpened(
                aggregate_id=self.aggregate_id,
                aggregate_version=self.get_next_version(),
                owner=owner,
            )
        )

    def deposit(self, amount: int) -> None:
        if not self.state.open:
            raise ValueError("open the account first")
        self.apply_event(
            MoneyDeposited(
                aggregate_id=self.aggregate_id,
                aggregate_version=self.get_next_version(),
                amount=amount,
            )
        )
