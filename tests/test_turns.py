"""The ingest service's per-device turns: one holder per key, the others in order of arrival,
a cancelled waiter neither keeps nor loses a turn."""

from __future__ import annotations

import asyncio

from sinogate.ingest import _Turns


def test_turns_run_one_at_a_time_in_order_of_arrival() -> None:
    async def main() -> list[str]:
        turns, log = _Turns(), []

        async def work(name: str, key: int) -> None:
            async with turns.turn(key):
                log.append(f"{name}+")
                await asyncio.sleep(0.01)
                log.append(f"{name}-")

        await asyncio.gather(work("a", 1), work("b", 1), work("c", 2), work("d", 1))
        assert len(turns) == 0  # nothing kept for keys nobody holds
        return log

    log = asyncio.run(main())
    ones = [x for x in log if x[0] in "abd"]
    assert ones == ["a+", "a-", "b+", "b-", "d+", "d-"]
    assert log.index("c+") < log.index("a-")  # another key does not wait


def test_a_cancelled_waiter_passes_the_turn_on() -> None:
    async def main() -> list[str]:
        turns, log = _Turns(), []
        await turns.acquire(7)
        waiter = asyncio.ensure_future(turns.acquire(7))
        later = asyncio.ensure_future(turns.acquire(7))
        await asyncio.sleep(0)
        waiter.cancel()  # cancelled while waiting: removed, the next one gets the turn
        await asyncio.sleep(0)
        turns.release(7)
        await later
        log.append("later holds")
        # handed over, then cancelled before it ran: the turn goes on, not lost
        third = asyncio.ensure_future(turns.acquire(7))
        fourth = asyncio.ensure_future(turns.acquire(7))
        await asyncio.sleep(0)
        turns.release(7)  # to third
        third.cancel()
        await asyncio.sleep(0)
        await asyncio.wait_for(fourth, 1)
        log.append("fourth holds")
        turns.release(7)
        assert len(turns) == 0
        assert waiter.cancelled() and third.cancelled()
        return log

    assert asyncio.run(main()) == ["later holds", "fourth holds"]
