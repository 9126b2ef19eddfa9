"""
The checkpoint tutorial on a SQLite file: run it twice and the second run resumes.

Run with: python examples/checkpoints_sqlite.py .demo/events.db

Each run places three new orders, then lets OrderProjection catch up from its saved
checkpoint. The first run starts from nothing; every later run handles only the orders placed
since the last one, because the checkpoint lives in the file next to the events.
"""

import asyncio
import sys
from pathlib import Path
from uuid import UUID, uuid4

import attrs

from eventsource_core import AggregateRepository, AggregateRoot, DomainEvent, register_event
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_sqlite import SQLiteCheckpointRepository, SQLiteEventStore

# =============================================================================
# Events, aggregate and projection (as in the tutorial)
# =============================================================================


@register_event
class OrderPlaced(DomainEvent):
    event_type: str = "OrderPlaced"
    aggregate_type: str = "Order"

    customer_id: UUID
    customer_name: str
    total_amount: float


@attrs.define
class OrderState:
    order_id: UUID
    customer_name: str = ""
    total_amount: float = 0.0
    status: str = "draft"


class OrderAggregate(AggregateRoot[OrderState]):
    aggregate_type = "Order"

    def _get_initial_state(self) -> OrderState:
        return OrderState(order_id=self.aggregate_id)

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, OrderPlaced):
            self._state = OrderState(
                order_id=self.aggregate_id,
                customer_name=event.customer_name,
                total_amount=event.total_amount,
                status="placed",
            )

    def place(self, customer_id: UUID, customer_name: str, total_amount: float) -> None:
        if self.version > 0:
            raise ValueError("Order already placed")
        self.apply_event(
            OrderPlaced(
                aggregate_id=self.aggregate_id,
                customer_id=customer_id,
                customer_name=customer_name,
                total_amount=total_amount,
                aggregate_version=self.get_next_version(),
            )
        )


class OrderProjection:
    """Counts the orders this process handled."""

    def __init__(self):
        self.order_count = 0
        self.total_revenue = 0.0

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [OrderPlaced]

    async def handle(self, event: DomainEvent) -> None:
        if isinstance(event, OrderPlaced):
            self.order_count += 1
            self.total_revenue += event.total_amount


# =============================================================================
# Demo
# =============================================================================


async def main(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    print("=" * 60)
    print(f"Checkpoints on SQLite: {path}")
    print("=" * 60)

    async with (
        SQLiteEventStore.open(url) as event_store,
        SQLiteCheckpointRepository.open(url) as checkpoint_repo,
    ):
        saved = await checkpoint_repo.get_position("OrderProjection")
        if saved is None:
            print("\n1. No checkpoint yet: this is the first run")
        else:
            print(f"\n1. Found checkpoint at position {saved}: resuming after it")

        print("\n2. Placing 3 new orders...")
        repo = AggregateRepository(
            event_store=event_store, aggregate_factory=OrderAggregate, aggregate_type="Order"
        )
        for i in range(3):
            order = repo.create_new(uuid4())
            order.place(uuid4(), f"Customer {i + 1}", 100.0 * (i + 1))
            await repo.save(order)
        latest = await event_store.current_position()
        print(f"   The store now holds {latest} events")

        print("\n3. Catching up from the checkpoint...")
        projection = OrderProjection()
        manager = SubscriptionManager(event_store, None, checkpoint_repo)
        config = SubscriptionConfig(start_from="checkpoint", poll_interval=0.05)
        subscription = await manager.subscribe(projection, config, name="OrderProjection")
        async with manager:
            await subscription.wait_for_position(latest)

        print(f"   Orders handled in this run: {projection.order_count}")
        print(f"   Revenue handled in this run: ${projection.total_revenue:.2f}")

        position = await checkpoint_repo.get_position("OrderProjection")
        checkpoint = (await checkpoint_repo.get_all_checkpoints())[0]
        metrics = await checkpoint_repo.get_lag_metrics("OrderProjection")
        print("\n4. Checkpoint:")
        print(f"   Position: {saved or 0} -> {position}")
        print(f"   Events processed (all runs): {checkpoint.events_processed}")
        print(f"   Last event ID: {checkpoint.last_event_id}")
        if metrics is not None:
            print(f"   Lag: {metrics.lag_seconds:.1f}s, events behind: {metrics.events_behind}")

    print("\nRun me again: the next run handles only the orders it places.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/checkpoints_sqlite.py PATH/TO/events.db")
    asyncio.run(main(sys.argv[1]))
