"""A node that missed other nodes' changes (NATS was away) reads every device again in one query:
changed and new devices are taken, devices deleted elsewhere are forgotten (as a delete here would
be), and a device connected to this node keeps the connection state the node knows."""

from __future__ import annotations

import asyncio

from sinogate.server.devices import DeviceRegistry
from sinogate.store.memory import MemoryStore


def test_reload_takes_changes_and_forgets_what_is_gone() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        here = DeviceRegistry(store)
        kept = await here.create({"ident": "4210000001", "protocol": "h02", "name": "kept"})
        gone = await here.create({"ident": "4210000002", "protocol": "h02", "name": "gone"})
        attached = await here.create({"ident": "4210000003", "protocol": "h02", "name": "attached"})
        await store.set_connected(attached["id"], True, 100.0)
        await here.refresh(attached["id"], attached=False)
        assert here.get(attached["id"])["connected"]
        forgotten: list[int] = []
        here.on_delete(forgotten.append)
        # meanwhile, through another node (the same store)
        await store.update_device(kept["id"], {"name": "renamed"})
        await store.delete_device(gone["id"])
        await store.set_connected(attached["id"], False, 50.0)
        new = await store.create_device({"ident": "4210000004", "protocol": "h02", "name": "new"})

        await here.reload(lambda device_id: device_id == attached["id"])
        assert here.get(kept["id"])["name"] == "renamed"
        assert here.find("h02", "4210000004") is not None and here.get(new["id"])["name"] == "new"
        assert here.find("h02", "4210000002") is None and forgotten == [gone["id"]]
        assert here.get(attached["id"])["connected"]  # this node holds its connection
        assert {d["id"] for d in here.all()} == {kept["id"], attached["id"], new["id"]}

    asyncio.run(main())
