"""
Tutorial 10: Checkpoints
Run with: python examples/checkpoints_tutorial.py
"""

import asyncio
from uuid import UUID, uuid4

import attrs

from eventsource_core import AggregateRepository, AggregateRoot, DomainEvent, register_event
from eventsource_core.subscriptions import SubscriptionConfig, SubscriptionManager
from eventsource_memory import (
    InMemoryCheckpointRepository,
    InMemoryEventBus,
    InMemoryEventStore,
)


# =============================================================================
# Events
# =============================================================================


@register_event
class OrderPlaced(DomainEvent):
    event_type: str = "OrderPlaced"
    aggregate_type: str = "Order"

    customer_id: UUID
    customer_name: str
    total_amount: float


@register_event
class OrderShipped(DomainEvent):
    event_type: str = "OrderShipped"
    aggregate_type: str = "Order"

    tracking_number: str


# =============================================================================
# Aggregate
# =============================================================================


@attrs.define
class OrderState:
    order_id: UUID
    customer_id: UUID | None = None
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
                customer_id=event.customer_id,
                customer_name=event.customer_name,
                total_amount=event.total_amount,
                status="placed",
            )
        elif isinstance(event, OrderShipped):
            if self._state:
                self._state = attrs.evolve(self._state, status="shipped")

    def place(self, customer_id: UUID, customer_name: str, total_amount: float) -> None:
        if self.version > 0:
            raise ValueError("Order already placed")
        event = OrderPlaced(
            aggregate_id=self.aggregate_id,
            customer_id=customer_id,
            customer_name=customer_name,
            total_amount=total_amount,
            aggregate_version=self.get_next_version(),
        )
        self.apply_event(event)

    def ship(self, tracking_number: str) -> None:
        if not self.state or self.state.status != "placed":
            raise ValueError("Order must be placed to ship")
        event = OrderShipped(
            aggregate_id=self.aggregate_id,
            tracking_number=tracking_number,
            aggregate_version=self.get_next_version(),
        )
        self.apply_event(event)


# =============================================================================
# Projection
# =============================================================================


class OrderProjection:
    """Simple projection that tracks order counts."""

    def __init__(self):
        self.order_count = 0
        self.total_revenue = 0.0

    def subscribed_to(self) -> list[type[DomainEvent]]:
        return [OrderPlaced]

    async def handle(self, event: DomainEvent) -> None:
        if isinstance(event, OrderPlaced):
            self.order_count += 1
            self.total_revenue += event.total_amount

    def get_summary(self) -> dict:
        return {
            "order_count": self.order_count,
            "total_revenue": self.total_revenue,
        }


# =============================================================================
# Demo
# =============================================================================


async def main():
    print("=" * 60)
    print("Tutorial 10: Checkpoints")
    print("=" * 60)

    # Setup infrastructure
    print("\n1. Setting up infrastructure...")
    event_store = InMemoryEventStore()
    event_bus = InMemoryEventBus()
    checkpoint_repo = InMemoryCheckpointRepository()

    repo = AggregateRepository(
        event_store=event_store,
        aggregate_factory=OrderAggregate,
        aggregate_type="Order",
        event_publisher=event_bus,
    )

    # Create historical orders
    print("\n2. Creating historical orders...")
    for i in range(3):
        order_id = uuid4()
        order = repo.create_new(order_id)
        order.place(uuid4(), f"Customer {i+1}", 100.0 * (i + 1))
        await repo.save(order)
    print("   Created 3 orders")

    # Create projection and subscription manager
    print("\n3. Creating projection...")
    projection = OrderProjection()

    manager = SubscriptionManager(
        event_store=event_store,
        event_bus=event_bus,
        checkpoint_repo=checkpoint_repo,
    )

    config = SubscriptionConfig(start_from="beginning")
    await manager.subscribe(projection, config=config, name="OrderProjection")

    # Start and catch up
    print("\n4. Starting SubscriptionManager (catching up)...")
    await manager.start()
    await asyncio.sleep(0.3)  # Wait for catch-up

    # Query projection
    print("\n5. Query projection after catch-up:")
    summary = projection.get_summary()
    print(f"   Orders: {summary['order_count']}")
    print(f"   Revenue: ${summary['total_revenue']:.2f}")

    # Check checkpoint
    print("\n6. Check checkpoint:")
    checkpoint = await checkpoint_repo.get_checkpoint("OrderProjection")
    position = await checkpoint_repo.get_position("OrderProjection")
    print(f"   Last event ID: {checkpoint}")
    print(f"   Last position: {position}")

    # Get all checkpoints
    all_checkpoints = await checkpoint_repo.get_all_checkpoints()
    if all_checkpoints:
        ckpt = all_checkpoints[0]
        print(f"   Events processed: {ckpt.events_processed}")
        print(f"   Last processed at: {ckpt.last_processed_at}")

    # Simulate restart
    print("\n7. Simulating restart...")
    await manager.stop()
    print("   Manager stopped")

    # Create new projection (simulates process restart)
    projection2 = OrderProjection()
    manager2 = SubscriptionManager(
        event_store=event_store,
        event_bus=event_bus,
        checkpoint_repo=checkpoint_repo,
    )

    # Subscribe with checkpoint resume
    config2 = SubscriptionConfig(start_from="checkpoint")
    await manager2.subscribe(projection2, config=config2, name="OrderProjection")

    await manager2.start()
    await asyncio.sleep(0.3)

    print("\n8. After restart (resumed from checkpoint):")
    summary2 = projection2.get_summary()
    print(f"   Orders: {summary2['order_count']}")
    print(f"   Revenue: ${summary2['total_revenue']:.2f}")

    # Create new order (live event)
    print("\n9. Creating new order (live event)...")
    order_id = uuid4()
    order = repo.create_new(order_id)
    order.place(uuid4(), "New Customer", 250.0)
    await repo.save(order)
    await asyncio.sleep(0.2)

    print("\n10. After live event:")
    summary3 = projection2.get_summary()
    print(f"   Orders: {summary3['order_count']}")
    print(f"   Revenue: ${summary3['total_revenue']:.2f}")

    # Final checkpoint
    final_checkpoint = await checkpoint_repo.get_checkpoint("OrderProjection")
    final_position = await checkpoint_repo.get_position("OrderProjection")
    print(f"\n11. Final checkpoint:")
    print(f"   Last event ID: {final_checkpoint}")
    print(f"   Last position: {final_position}")

    # Cleanup
    await manager2.stop()

    print("\n" + "=" * 60)
    print("Tutorial complete!")
    print("=" * 60)


if __name__ == "__main__":
    asyncio.run(main())
