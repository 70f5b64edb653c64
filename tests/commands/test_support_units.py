"""CommandSupport on fakes: a real-time command that times out while the device keeps reporting is
ignored, one whose device went away is not; a late answer turns ignored into answered; the model
comes from JT/T 808 registration fields."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sinogate.commands.support import CommandSupport
from sinogate.ingest import Committed, Source
from sinogate.store.memory import MemoryStore


class Tasks:
    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro)


class Sessions:
    def __init__(self) -> None:
        self.conn: int | None = 7

    def session_for(self, _device_id: int) -> Any:
        return None if self.conn is None else SimpleNamespace(conn_id=self.conn)


def batch(conn: int, now: float, **fields: Any) -> Committed:
    message = {"ident": "013511221122", "timestamp": now, **fields}
    return Committed(Source("jt808", "tcp", "p", 2, 2, conn), {"id": 1, "protocol": "jt808"}, "013511221122",
                     [message], now)


def row(command_id: int, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": command_id, "device_id": 1, "name": "interval.set", "status": status, "realtime": True,
            "sent": 100.0, "expire": 115.0, "match": {"serial": command_id, "msg_id": 0x8103}, **fields}


def test_timeouts_late_answers_and_the_model() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        await store.open()
        sessions = Sessions()
        support = CommandSupport(store, sessions, Tasks(), clock=lambda: 200.0)
        await support.load()
        support.observe(row(1, "sent"))
        support.observe(row(1, "expired"))
        support.committed(batch(7, 110.0))  # within the 15 s timeout: nothing yet
        support.committed(batch(7, 130.0, **{"device.model": "ST-901L 4G", "device.software.version": "V2.1"}))
        support.observe(row(2, "sent"))
        support.observe(row(2, "canceled"))
        support.committed(batch(8, 140.0))  # a new connection: command 2 was unanswered, not ignored
        support.observe(row(3, "sent"))
        support.committed(batch(7, 150.0))
        support.observe(row(3, "processed", executed=True, finished=160.0))  # late, but answered
        await asyncio.sleep(0)
        (view,) = support.for_devices([{"id": 1, "protocol": "jt808", "ident": "013511221122"}])
        assert view["model"] == "ST-901L 4G" and view["firmware"] == "V2.1"
        entry = next(e for e in view["commands"] if e["key"] == "interval.set 0x8103")
        assert (entry["sent"], entry["ignored"], entry["replied"]) == (3, 1, 1)
        assert entry["verdict"] == "answered 1/3, ignored 1" and entry["reply_time"] == 60.0
        assert await store.kv_get("command_support", "1")
        (model,) = support.for_models([{"id": 1, "protocol": "jt808"}], "st-901l*")
        assert model["devices"] == 1
        await store.close()

    asyncio.run(scenario())
