"""ReadAhead's rules, on a log kept in a list: which early fetches may be served."""

import asyncio
from collections.abc import Sequence

import pytest

from eventsource_core.readahead import ReadAhead


class ListLog:
    """Positions 1..n; ``fail_next`` makes the next fetch raise, as a lost connection would."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fetches: list[int] = []
        self.fail_next = False

    async def fetch(self, after: int, limit: int, types: Sequence[str] | None) -> list[int]:
        self.fetches.append(after)
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("connection lost")
        return list(range(after + 1, min(after + limit, self.size) + 1))


def follows(page: list[int], limit: int) -> int | None:
    return page[-1] if len(page) == limit else None


def test_the_page_after_a_full_one_is_fetched_early_and_served() -> None:
    async def main() -> None:
        log = ListLog(25)
        ahead = ReadAhead(log.fetch, follows)
        assert await ahead.fetch(0, 10) == list(range(1, 11))
        assert await ahead.fetch(10, 10) == list(range(11, 21))
        assert await ahead.fetch(20, 10) == [21, 22, 23, 24, 25]
        # 11..20 was served from its early fetch; the early 21..25 was short, so fetched again
        assert log.fetches == [0, 10, 20, 20]
        await ahead.close()

    asyncio.run(main())


def test_a_short_early_page_is_fetched_again_with_what_arrived_since() -> None:
    async def main() -> None:
        log = ListLog(12)
        ahead = ReadAhead(log.fetch, follows)
        await ahead.fetch(0, 10)
        await asyncio.sleep(0.01)  # the early fetch sees only 11 and 12
        log.size = 15
        assert await ahead.fetch(10, 10) == [11, 12, 13, 14, 15]
        assert log.fetches == [0, 10, 10]

    asyncio.run(main())


def test_a_failed_early_fetch_is_retried_and_a_failure_now_is_raised() -> None:
    async def main() -> None:
        log = ListLog(30)
        ahead = ReadAhead(log.fetch, follows)
        await ahead.fetch(0, 10)  # starts the early fetch of 11..20 ...
        log.fail_next = True  # ... which fails
        assert await ahead.fetch(10, 10) == list(range(11, 21))
        await ahead.close()
        log.fail_next = True
        with pytest.raises(ConnectionError):
            await ahead.fetch(20, 10)  # fetched now, so its error reaches the caller

    asyncio.run(main())


def test_no_early_fetch_when_asked_not_to_or_after_close() -> None:
    async def main() -> None:
        log = ListLog(40)
        ahead = ReadAhead(log.fetch, follows)
        await ahead.fetch(0, 10, prefetched=False)
        await ahead.close()
        await ahead.fetch(10, 10)
        assert log.fetches == [0, 10]
        ahead.reopen()
        await ahead.fetch(20, 10)
        await asyncio.sleep(0.01)
        assert log.fetches == [0, 10, 20, 30]

    asyncio.run(main())


def test_readers_at_different_positions_keep_their_own_early_fetches() -> None:
    async def main() -> None:
        log = ListLog(100)
        ahead = ReadAhead(log.fetch, follows)
        await ahead.fetch(0, 10)  # reader A; its 11..20 is fetched early
        await ahead.fetch(50, 10)  # reader B; its 61..70 is fetched early
        assert await ahead.fetch(10, 10) == list(range(11, 21))
        assert await ahead.fetch(60, 10) == list(range(61, 71))
        assert sorted(log.fetches[:4]) == [0, 10, 50, 60]  # neither early fetch was wasted
        await ahead.close()

    asyncio.run(main())
