"""Deciding, with evidence, when a hole in the position sequence can no longer fill.

Positions come from an identity sequence when a row is inserted, but rows become visible when
their transaction commits, so a reader can see position 7 while 6 is still in flight. Every
append asks for its transaction id *before* taking positions. Hence, if a snapshot S shows a
position above a hole h, the transaction T that took h had its id before S was taken, and if T
was still running at S its id is either in S's in-progress list or in ``[xmax(S), U)``, where U is
an id assigned after S. Once a later snapshot shows none of those ids running (and knows about U),
T has ended: h either is visible in that snapshot or never will be. Nothing is decided on a timer.

This module holds that bookkeeping; :mod:`eventsource_postgres.store` runs the queries.
"""

from __future__ import annotations

import bisect
import time

import attrs

__all__ = ["BlockingTransaction", "GapTracker", "HeldBack", "HoleEvidence", "Snapshot"]


@attrs.frozen
class Snapshot:
    """A ``pg_snapshot``: every id below ``xmin`` has ended; ``xip`` lists running ids."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """Parse the text form ``xmin:xmax:xip1,xip2``."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))


@attrs.frozen
class HoleEvidence:
    """Which transactions could still fill the holes first seen in one snapshot."""

    xip: frozenset[int]
    xmax: int
    upper: int  # an id assigned after that snapshot was taken
    seen_at: float = attrs.field(factory=time.monotonic)

    def blockers(self, now: Snapshot) -> list[int] | None:
        """Ids in ``now`` that may still fill the holes; ``None`` if ``now`` is too old to say."""
        if now.xmax <= self.upper:
            return None
        return sorted(x for x in now.xip if x in self.xip or self.xmax <= x < self.upper)


@attrs.frozen
class HeldBack:
    """Readers wait at ``position`` for ``blocking_xids`` to end (seen ``seconds`` ago)."""

    position: int
    seconds: float
    blocking_xids: tuple[int, ...]


@attrs.frozen
class BlockingTransaction:
    """A session whose open transaction holds readers at a hole."""

    pid: int
    xid: int
    state: str | None
    seconds: float | None
    query: str | None


class GapTracker:
    """Settled position ranges and hole evidence, shared by every reader of one store.

    A range ``(lo, hi]`` is settled when every position in it is either visible or can never
    appear. Ranges only grow; they are kept per starting point so a reader resuming at a late
    checkpoint does not scan the log from the start.
    """

    MAX_RANGES = 64
    MAX_EVIDENCE = 10_000

    def __init__(self) -> None:
        self._los: list[int] = []
        self._his: list[int] = []
        self._evidence: list[tuple[int, int, HoleEvidence]] = []
        self.held: HeldBack | None = None

    def settled_until(self, after: int) -> int:
        """The highest position up to which ``(after, ...]`` is known settled (>= ``after``)."""
        i = bisect.bisect_right(self._los, after) - 1
        if i >= 0 and self._his[i] >= after:
            return self._his[i]
        return after

    def extend(self, after: int, hi: int) -> None:
        """Record that ``(after, hi]`` is settled, merging with neighbouring ranges."""
        if hi <= after:
            return
        i = bisect.bisect_right(self._los, after) - 1
        if i >= 0 and self._his[i] >= after:
            self._his[i] = max(self._his[i], hi)
        else:
            i += 1
            self._los.insert(i, after)
            self._his.insert(i, hi)
        while i + 1 < len(self._los) and self._los[i + 1] <= self._his[i]:
            self._his[i] = max(self._his[i], self._his.pop(i + 1))
            self._los.pop(i + 1)
        if len(self._los) > self.MAX_RANGES:
            drop = 0 if i != 0 else 1
            self._los.pop(drop)
            self._his.pop(drop)
        held = self.held
        if held is not None and self.settled_until(held.position - 1) >= held.position:
            self.held = None
        if self._evidence:
            self._evidence = [
                item for item in self._evidence if self.settled_until(item[0] - 1) < item[1]
            ]

    def _covering(self, position: int) -> tuple[int, int, HoleEvidence] | None:
        for item in self._evidence:
            if item[0] <= position <= item[1]:
                return item
        return None

    def decide(
        self, start: int, top: int | None, holes: list[tuple[int, int]], now: Snapshot
    ) -> tuple[int, list[tuple[int, int]]]:
        """Given what snapshot ``now`` shows in ``(start, top]`` and its holes, settle what it can.

        ``holes`` are inclusive ``(first, last)`` ranges of missing positions below ``top``.
        Returns the new settled bound and the hole ranges that have no evidence yet (the caller
        gathers it with :meth:`record`).
        """
        if top is None or top <= start:
            return start, []
        for first, last in holes:
            position = first
            while position <= last:
                covering = self._covering(position)
                if covering is None:
                    self.extend(start, position - 1)
                    return position - 1, [(position, last)]
                evidence = covering[2]
                blockers = evidence.blockers(now)
                if blockers is None or blockers:
                    self.extend(start, position - 1)
                    waited = time.monotonic() - evidence.seen_at
                    self.held = HeldBack(position, waited, tuple(blockers or ()))
                    return position - 1, []
                position = covering[1] + 1
        self.extend(start, top)
        self.held = None
        return top, []

    def record(self, holes: list[tuple[int, int]], seen: Snapshot, upper: int) -> None:
        """Remember, for ``holes`` first seen in ``seen``, which transactions could fill them."""
        if len(self._evidence) + len(holes) > self.MAX_EVIDENCE:
            self._evidence.clear()  # safe: evidence is gathered again on the next sighting
        evidence = HoleEvidence(seen.xip, seen.xmax, upper)
        self._evidence.extend((first, last, evidence) for first, last in holes)
