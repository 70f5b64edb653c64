"""ReadBudget: device reads in process at once are bounded, first come first served."""

from __future__ import annotations

import asyncio

from sinogate.server.session import ReadBudget


async def _test_reads_wait_for_room_in_order() -> None:
    budget = ReadBudget(100)
    await budget.acquire(60)
    order: list[str] = []

    async def read(name: str, n: int) -> None:
        await budget.acquire(n)
        order.append(name)

    first = asyncio.create_task(read("first", 50))
    second = asyncio.create_task(read("second", 10))  # would fit, but comes after a waiting read
    await asyncio.sleep(0)
    assert order == [] and budget.waited == 2
    budget.release(60)
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and budget.used == 60


async def _test_a_read_larger_than_the_budget_goes_alone() -> None:
    budget = ReadBudget(100)
    await budget.acquire(500)  # nothing else in process: it goes
    waiting = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0)
    assert not waiting.done()
    budget.release(500)
    await waiting
    assert budget.used == 1


async def _test_a_cancelled_waiter_gives_its_turn_away() -> None:
    budget = ReadBudget(100)
    await budget.acquire(100)
    cancelled = asyncio.create_task(budget.acquire(50))
    later = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    budget.release(100)
    await later
    assert budget.used == 50


def test_reads_wait_for_room_in_order() -> None:
    asyncio.run(_test_reads_wait_for_room_in_order())


def test_a_read_larger_than_the_budget_goes_alone() -> None:
    asyncio.run(_test_a_read_larger_than_the_budget_goes_alone())


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    asyncio.run(_test_a_cancelled_waiter_gives_its_turn_away())
