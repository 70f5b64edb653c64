"""Device simulator: many H02 / JT/T 808 trackers over TCP that report, get acked and answer commands.

Library use (e.g. from a benchmark)::

    from sinogate.simulate import SimConfig, run
    summary = asyncio.run(run(SimConfig(protocol="jt808", devices=100, rate=5, duration=10)))
    summary.write_json("out.json")
"""

from __future__ import annotations

from sinogate.simulate.config import (
    CommandRecord,
    DeviceSummary,
    SimConfig,
    Summary,
    device_plan,
    h02_ident,
    jt808_phone,
    load_summary,
)
from sinogate.simulate.device import Stats
from sinogate.simulate.runner import Runner, run

__all__ = [
    "CommandRecord",
    "DeviceSummary",
    "Runner",
    "SimConfig",
    "Stats",
    "Summary",
    "device_plan",
    "h02_ident",
    "jt808_phone",
    "load_summary",
    "run",
]
