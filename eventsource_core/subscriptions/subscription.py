"""One subscription: a single reader that catches up from its checkpoint, then follows live.

The store is the only source of events. Wake-ups (bus, NOTIFY) and the poll timer only make the
reader look again, so catch-up and live mode are the same loop and cannot lose or repeat events.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import anyio
from anyio.abc import TaskStatus

from ..checkpoints import (
    CheckpointRepository,
    LagMetrics,
    QueueingCheckpointRepository,
    validate_name,
)
from ..claims import Claim, ClaimingCheckpointRepository
from ..errors import (
    ConfigurationError,
    OwnershipLostError,
    ProjectionFailedError,
    StorageUnavailableError,
    SubscriptionError,
)
from ..events import DomainEvent, event_type_names
from ..store import EventSource, StoredEvent
from ..transactions import TransactionalCheckpointRepository
from .config import SubscriptionConfig
from .progress import Progress
from .strategies import CheckpointPolicy

__all__ = ["Subscription", "SubscriptionState"]

log = logging.getLogger("eventsource_core.subscriptions")


class SubscriptionState(enum.StrEnum):
    PENDING = "pending"
    STANDBY = "standby"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Subscription:
    """Drives one projection. Create through :meth:`SubscriptionManager.subscribe`."""

    #: Back-off after :class:`StorageUnavailableError`: doubles from the first delay to the cap.
    RETRY_FIRST_DELAY = 0.2
    RETRY_MAX_DELAY = 5.0

    def __init__(
        self,
        name: str,
        projection: Any,
        config: SubscriptionConfig,
        policy: CheckpointPolicy,
        source: EventSource,
        checkpoints: CheckpointRepository,
    ) -> None:
        try:
            self.name = validate_name(name)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.projection = projection
        self.config = config
        self.policy = policy
        self.source = source
        self.checkpoints = checkpoints
        self.event_types = _subscribed_types(projection)
        self.state = SubscriptionState.PENDING
        self.error: BaseException | None = None
        #: Position of the last event handled (saved or not).
        self.position = 0
        #: Highest position the reader has looked past (for filtered projections).
        self._scanned = 0
        self.events_handled = 0
        self._transactional = hasattr(projection, "handle_in_transaction")
        if self._transactional and not isinstance(checkpoints, TransactionalCheckpointRepository):
            raise ConfigurationError(
                f"projection {name!r} defines handle_in_transaction, but "
                f"{type(checkpoints).__name__} cannot run transactions; use the sqlite or "
                "postgres checkpoint repository, or define handle(event) instead"
            )
        self._wake = anyio.Event()
        self._stopping = False
        self._cancel = anyio.CancelScope()
        self._done = anyio.Event()
        self._position_changed = anyio.Event()
        self._started_once = False
        self._task_id: int | None = None
        self._end: int | None = None
        #: Where the first start began; a restart before any event was handled resumes here.
        self._first_target = 0
        self._progress = Progress(self.name, checkpoints)
        self._queue = (
            checkpoints.queue_position
            if isinstance(checkpoints, QueueingCheckpointRepository)
            else None
        )
        self._failures = 0

    def prepare_restart(self) -> None:
        """Make a stopped or failed subscription runnable again; it resumes from its checkpoint."""
        if not self._done.is_set():
            raise SubscriptionError(f"subscription {self.name!r} is still running; stop it first")
        self.state, self.error = SubscriptionState.PENDING, None
        self._stopping = False
        self._wake, self._done = anyio.Event(), anyio.Event()
        self._cancel = anyio.CancelScope()
        self.position = 0  # unknown until the checkpoint is read; never report stale progress
        self._scanned = 0

    async def lag(self) -> LagMetrics | None:
        """Lag metrics filtered to the event types this projection subscribes to."""
        return await self.checkpoints.get_lag_metrics(self.name, self.event_types)

    def notify(self) -> None:
        """New events may exist; the reader looks again (a hint, never data)."""
        self._wake.set()

    async def wait_for_position(self, position: int) -> None:
        """Wait until events up to ``position`` have been handled (or the subscription ended).

        For a projection that subscribes to some event types only, positions of other types
        count as handled once the reader has looked past them.
        """
        while max(self.position, self._scanned) < position and not self._done.is_set():
            changed = self._position_changed
            with anyio.move_on_after(self.config.poll_interval):
                await changed.wait()

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped or failed. Never raises: the error is kept on ``self.error``."""
        self._task_id = anyio.get_current_task().id
        try:
            with self._cancel:
                if self.config.start_from == "end" and not self._started_once:
                    # Fix "the end" before callers go on: an append right after start() is new.
                    self._end = await self.source.current_position()
                task_status.started()
                if isinstance(self.checkpoints, ClaimingCheckpointRepository):
                    await self._run_claimed(self.checkpoints)
                else:
                    await self._run_owned()
        except Exception as exc:  # kept for the manager; other subscriptions go on
            self.error = exc
            self.state = SubscriptionState.FAILED
            log.error("subscription %r failed: %s", self.name, exc, exc_info=exc)
        finally:
            if self.state is not SubscriptionState.FAILED:
                self.state = SubscriptionState.STOPPED
            self._done.set()
            self._position_changed.set()

    def request_stop(self) -> None:
        """Ask the reader to stop after the current event and save; do not wait for it."""
        self._stopping = True
        self._wake.set()
        if self.state is SubscriptionState.STANDBY:
            self._cancel.cancel()  # nothing to save while waiting for a claim

    def runs_current_task(self) -> bool:
        """Whether the caller is this subscription's own task, that is, one of its handlers."""
        return not self._done.is_set() and self._task_id == anyio.get_current_task().id

    async def stop(self) -> None:
        """Finish the current event (or batch), save the checkpoint, and return."""
        self.request_stop()
        with anyio.move_on_after(self.config.stop_timeout) as scope:
            await self._done.wait()
        if scope.cancelled_caught:
            log.warning(
                "subscription %r did not finish its batch within %.1fs; cancelling its handler",
                self.name,
                self.config.stop_timeout,
            )
            self._cancel.cancel()
            await self._done.wait()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def _run_claimed(self, claims: ClaimingCheckpointRepository) -> None:
        while not self._stopping:
            self.state = SubscriptionState.STANDBY
            async with claims.claim(self.name) as claim:
                lost = await self._run_while_owned(claim)
            if not lost:
                return
            log.warning("subscription %r lost its claim; standing by to reclaim it", self.name)

    async def _run_while_owned(self, claim: Claim) -> bool:
        """Process while ``claim`` holds; True if it was lost rather than stopped."""
        lost = False
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal lost
                await claim.wait_lost()
                lost = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await self._run_owned()
            except OwnershipLostError:
                lost = True
            except Exception as exc:  # re-raised below, outside the task group's wrapping
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return lost and not self._stopping

    async def _run_owned(self) -> None:
        self.state = SubscriptionState.RUNNING
        self._failures = 0
        while True:
            try:
                self.position = await self._start_position()
                changed, self._position_changed = self._position_changed, anyio.Event()
                changed.set()
                break
            except StorageUnavailableError as exc:
                if self._stopping:
                    return  # nothing was handled, so nothing is left to save
                await self._back_off(exc)
        self._progress.forget()
        try:
            await self._drain_until_stopped()
        finally:
            with anyio.CancelScope(shield=True):
                await self._final_flush()

    async def _drain_until_stopped(self) -> None:
        """Read and handle; an unreachable storage is waited out, a projection error is not."""
        resync = False
        while not self._stopping:
            try:
                if resync and self._transactional:
                    # The last commit may have landed before the connection dropped.
                    saved = await self.checkpoints.get_position(self.name)
                    self.position = max(self.position, saved or 0)
                resync = False
                await self._drain_forever()
            except StorageUnavailableError as exc:
                resync = True
                await self._back_off(exc)

    async def _back_off(self, exc: StorageUnavailableError) -> None:
        """Log the outage and wait (exponentially longer, up to a cap) unless stopped."""
        self._failures += 1
        delay = min(self.RETRY_MAX_DELAY, self.RETRY_FIRST_DELAY * 2 ** (self._failures - 1))
        log.warning(
            "subscription %r cannot reach its storage (%s); retrying in %.1fs (attempt %d), "
            "resuming at position %d",
            self.name,
            exc,
            delay,
            self._failures,
            self.position,
            exc_info=exc if self._failures == 1 else None,
        )
        deadline = anyio.current_time() + delay
        while not self._stopping:
            wake = self._wake = anyio.Event()
            with anyio.move_on_after(deadline - anyio.current_time()) as scope:
                await wake.wait()
            if scope.cancelled_caught:
                return

    async def _final_flush(self) -> None:
        try:
            await self._progress.save()
        except StorageUnavailableError as exc:
            log.error(
                "subscription %r could not save its checkpoint at position %d (%s); the events "
                "after the last saved checkpoint will be handled again when it resumes",
                self.name,
                self.position,
                exc,
            )

    async def _start_position(self) -> int:
        saved = await self.checkpoints.get_position(self.name)
        start = self.config.start_from
        if self._started_once and saved is None and self.events_handled == 0:
            return self._first_target  # nothing handled, so no checkpoint: not a reset
        if self._started_once or start == "checkpoint":
            return saved or 0
        if start == "beginning":
            target = 0
        elif start == "end":
            target = self._end if self._end is not None else await self.source.current_position()
        else:
            target = int(start)
        if saved is not None and saved > target:
            log.info("subscription %r rewinds from %d to %d", self.name, saved, target)
            await self.checkpoints.reset_checkpoint(self.name)
        self._started_once = True
        self._first_target = target
        return target

    # -- the loop ------------------------------------------------------------------------------

    async def _drain_forever(self) -> None:
        batch_size = self.config.batch_size
        # A save due at the end of a full page runs while the next page is read and decoded,
        # and is confirmed before that page is handled: a crash still repeats at most a batch.
        behind = not self.policy.per_event and not self._transactional
        progress = self._progress
        failure: Exception | None = None
        async with anyio.create_task_group() as saves:
            try:
                horizon: int | None = None
                live = True
                while not self._stopping:
                    wake = self._wake = anyio.Event()  # set by any notify() from here on
                    if live and self.event_types is not None:
                        # Taken before the read: a short page proves nothing of ours up to it.
                        horizon = await self.source.current_position()
                    batch = await self.source.read_page(self.position, batch_size, self.event_types)
                    self._failures = 0
                    await progress.settle()  # handle nothing past an unconfirmed save
                    if batch:
                        await self._handle(batch)
                        full = len(batch) == batch_size
                        if progress.pending and self.policy.due(
                            progress.pending, progress.since_save(), True
                        ):
                            if behind and full:
                                await progress.save_behind(saves)
                            else:
                                await progress.save()
                        if full:
                            horizon, live = None, False  # catching up: no lookups per page
                            await anyio.lowlevel.checkpoint()
                            continue
                    if horizon is not None and horizon > self._scanned:
                        self._scanned = horizon
                        changed, self._position_changed = self._position_changed, anyio.Event()
                        changed.set()
                    horizon, live = None, True
                    await self._idle(wake)
                await progress.settle()
            except Exception as exc:  # re-raised below, not wrapped in an exception group
                failure = exc
        if failure is not None:
            raise failure

    async def _idle(self, wake: anyio.Event) -> None:
        timeout = self.config.poll_interval
        progress = self._progress
        if progress.pending:
            recheck = self.policy.recheck_in(progress.since_save())
            if recheck is not None:
                timeout = min(timeout, recheck)
        with anyio.move_on_after(timeout):
            await wake.wait()
        if progress.pending and self.policy.due(progress.pending, progress.since_save(), True):
            await progress.save()

    async def _handle(self, batch: Sequence[StoredEvent]) -> None:
        if self._transactional:
            await self._handle_in_transaction(batch)
        elif (handle_batch := getattr(self.projection, "handle_batch", None)) is not None:
            await self._guarded(handle_batch([s.event for s in batch]), None)
            self._advance(batch[-1], len(batch))
        else:
            await self._handle_each(batch)
        changed, self._position_changed = self._position_changed, anyio.Event()
        changed.set()

    async def _handle_each(self, batch: Sequence[StoredEvent]) -> None:
        """The hot path: one handler call per event, asking the policy in between.

        Progress lives in locals and is written back in ``finally``, so a failure or a
        cancellation mid-batch still leaves it exact for the final save. A backend that can
        queue saves writes one event's checkpoint while the next event is handled.
        """
        handle: Callable[[DomainEvent], Awaitable[None]] = self.projection.handle
        due = self.policy.due if self.policy.per_event else None
        save = self.checkpoints.save_position
        queue = self._queue
        monotonic = time.monotonic
        name = self.name
        progress = self._progress
        last, pending, handled = progress.last, progress.pending, 0
        # The newest queued save, and the one before it until it is confirmed.
        newest: _Queued | None = None
        previous: _Queued | None = None  # kept only when confirming it failed
        unsure = False
        try:
            for stored in batch:
                event = stored.event
                try:
                    await handle(event)
                except Exception as exc:
                    raise ProjectionFailedError(
                        name, stored.global_position, event.event_type
                    ) from exc
                last = stored
                pending += 1
                handled += 1
                if due is not None and due(pending, monotonic() - progress.saved_at, False):
                    if queue is None:
                        await save(
                            name,
                            stored.global_position,
                            event.event_id,
                            event.event_type,
                            events=pending,
                        )
                        pending = 0
                    else:
                        # Queue this save first, then confirm the one before: the database
                        # always has the next write waiting, and at most one event's save is
                        # unconfirmed while the next event is handled.
                        sending = queue(
                            name,
                            stored.global_position,
                            event.event_id,
                            event.event_type,
                            events=pending,
                        )
                        previous, newest = newest, _Queued(sending, stored, pending)
                        pending = 0  # counted by the queued save from here on
                        if previous is not None:
                            try:
                                await previous.sending
                            except anyio.get_cancelled_exc_class():
                                unsure = True  # it may or may not have applied
                                raise
                            previous = None
                    progress.saved_at = monotonic()
                if self._stopping:
                    return
        finally:
            if newest is not None:
                pending += await self._settle(newest, previous, unsure)
            progress.last, progress.pending = last, pending
            self.events_handled += handled
            if last is not None:
                self.position = last.global_position

    async def _settle(self, newest: _Queued, previous: _Queued | None, unsure: bool) -> int:
        """Wait for the newest queued save; return how many events are still unsaved.

        ``previous`` is the save before it, if confirming that one failed (``unsure``: was
        cancelled). A queued save applies only if the one before it did, so the newest
        succeeding confirms both. A save whose outcome is unknown is made again: saving a
        position twice counts its events once, so the count stays exact.
        """
        unsaved = newest.events
        with anyio.CancelScope(shield=True):
            try:
                await newest.sending
                unsaved = 0
            except Exception:
                if previous is not None and not (unsure and await self._save_again(previous)):
                    unsaved += previous.events
        return unsaved

    async def _save_again(self, queued: _Queued) -> bool:
        stored = queued.stored
        try:
            await self.checkpoints.save_position(
                self.name,
                stored.global_position,
                stored.event_id,
                stored.event_type,
                events=queued.events,
            )
        except Exception:
            return False
        return True

    async def _handle_in_transaction(self, batch: Sequence[StoredEvent]) -> None:
        assert isinstance(self.checkpoints, TransactionalCheckpointRepository)
        handle = self.projection.handle_in_transaction
        last = batch[-1]
        async with self.checkpoints.transaction() as tx:
            for stored in batch:
                await self._guarded(handle(stored.event, tx), stored)
            await tx.save_position(
                self.name, last.global_position, last.event_id, last.event_type, events=len(batch)
            )
        self._advance(last, len(batch))
        self._progress.saved()

    async def _guarded(self, call: Awaitable[None], stored: StoredEvent | None) -> None:
        """Await a handler; its exception becomes a ProjectionFailedError naming the event."""
        try:
            await call
        except Exception as exc:
            position = stored.global_position if stored is not None else None
            event_type = stored.event.event_type if stored is not None else None
            raise ProjectionFailedError(self.name, position, event_type) from exc

    def _advance(self, stored: StoredEvent, count: int) -> None:
        self._progress.advance(stored, count)
        self.position = stored.global_position
        self.events_handled += count


class _Queued(NamedTuple):
    """A checkpoint save sent ahead, with the event it covers and how many events it counts."""

    sending: Awaitable[None]
    stored: StoredEvent
    events: int


def _subscribed_types(projection: Any) -> list[str] | None:
    if not callable(getattr(projection, "handle", None)) and not hasattr(
        projection, "handle_in_transaction"
    ):
        raise ConfigurationError(
            f"{type(projection).__name__} cannot be subscribed: define "
            "'async def handle(self, event)' (and optionally subscribed_to())"
        )
    subscribed = getattr(projection, "subscribed_to", None)
    return event_type_names(subscribed() if callable(subscribed) else None)
