"""End-to-end runs of the simulator against a tiny in-test server (each a few seconds)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import struct
from pathlib import Path

import pytest
from sim_fakeserver import FakeServer

from sinogate.simulate import SimConfig, Summary, device_plan, load_summary, run
from sinogate.simulate.route import Route

pytestmark = pytest.mark.timeout(20)


def _cfg(srv: FakeServer, **kw: object) -> SimConfig:
    base: dict[str, object] = dict(
        h02_port=srv.h02_port, jt808_port=srv.jt808_port, devices=12, rate=5.0, duration=2.0, seed=4,
        drain_timeout=2.0, alarm_rate=0.05,
    )
    base.update(kw)
    return SimConfig(**base)  # type: ignore[arg-type]


async def _with_server(cfg_kw: dict[str, object], r12: bool = True) -> tuple[Summary, FakeServer]:
    srv = FakeServer(r12=r12)
    await srv.start()
    try:
        summary = await run(_cfg(srv, **cfg_kw))
    finally:
        await srv.stop()
    return summary, srv


def _check_accounting(summary: Summary, srv: FakeServer) -> None:
    for d in summary.devices:
        ts = [t for t, _ in d.sent_messages]
        assert len(ts) == d.sent == len(set(ts)), "device timestamps must be unique per device"
        assert [s for _, s in d.sent_messages] == list(range(d.sent))
        assert srv.positions.get(d.ident, 0) == d.sent, d.ident
        assert d.sent - d.acked == len(d.unacked_seqs)


def test_mixed_run_counts_and_json(tmp_path: Path) -> None:
    summary, srv = asyncio.run(
        _with_server(dict(protocol="mixed", binary_share=0.3, jt808_2019_share=0.5))
    )
    assert summary.errors == 0
    assert summary.connected == 12
    # 2 s at 5/s: 10 or 11 positions each (the first is sent at once, phases are staggered)
    assert all(9 <= d.sent <= 11 for d in summary.devices), [d.sent for d in summary.devices]
    assert summary.sent == sum(srv.positions.values())
    assert summary.acked == summary.sent  # V4,V1 + R12 for H02, 0x8001 for JT808
    assert srv.bad_checksums == 0
    _check_accounting(summary, srv)
    variants = {d.variant for d in summary.devices}
    assert {"2013", "2019"} <= variants and any(v.startswith("text+bin") for v in variants)

    out = tmp_path / "sim.json"
    summary.write_json(out)
    data = load_summary(out)
    assert data["sent"] == summary.sent and data["acked"] == summary.acked
    dev = data["devices"][0]
    assert {"ident", "protocol", "sent", "acked", "sent_messages", "unacked_seqs", "commands"} <= set(dev)
    assert dev["sent_messages"][0] == [dev["sent_messages"][0][0], 0]
    json.dumps(data)


def test_h02_binary_without_r12_stays_unacked() -> None:
    summary, srv = asyncio.run(_with_server(dict(protocol="h02", binary_share=0.5, devices=4), r12=False))
    _check_accounting(summary, srv)
    assert 0 < summary.acked < summary.sent


def test_jt808_batches() -> None:
    summary, srv = asyncio.run(_with_server(dict(protocol="jt808", jt808_batch=4, devices=3, rate=10.0)))
    _check_accounting(summary, srv)
    assert summary.acked == summary.sent > 0


def test_reconnect_storm_backfills() -> None:
    summary, srv = asyncio.run(
        _with_server(
            dict(protocol="mixed", devices=6, duration=2.5, reconnect_storm=0.8, storm_offline=0.6, rate=5.0)
        )
    )
    assert all(d.connects == 2 for d in summary.devices), [d.connects for d in summary.devices]
    _check_accounting(summary, srv)
    assert summary.acked == summary.sent
    # positions generated while offline were uploaded later: nothing lost, about rate x duration each
    assert all(d.sent >= 11 for d in summary.devices)


async def _commands_scenario() -> tuple[Summary, FakeServer]:
    srv = FakeServer()
    await srv.start()
    cfg = _cfg(srv, protocol="mixed", devices=2, duration=3.0, rate=2.0, alarm_rate=0.0)
    (h02_id, jt_id) = (ident for _, ident in device_plan(cfg))

    async def commander() -> None:
        while h02_id not in srv.conns or jt_id not in srv.conns:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # JT808 register/auth done
        for cmd in (
            f"*HQ,{h02_id},S20,010203,1,1#",
            f"*HQ,{h02_id},S71,010204,22,10#",
            f"*HQ,{h02_id},SCF,010205,0,0#",
            f"*HQ,{h02_id},S26,010206#",
            f"*HQ,{h02_id},R1,010207#",
            "RCONF",
        ):
            srv.send_h02(h02_id, cmd.encode())
            await asyncio.sleep(0.1)
        srv.send_jt808(jt_id, 0x8103, bytes((1,)) + struct.pack(">IB", 0x0029, 4) + (10).to_bytes(4, "big"))
        srv.send_jt808(jt_id, 0x8104, b"")
        srv.send_jt808(jt_id, 0x8105, bytes((0xF0,)))
        srv.send_jt808(jt_id, 0x8300, b"\x01STATUS#")

    try:
        summary, _ = await asyncio.gather(run(cfg), commander())
    finally:
        await srv.stop()
    return summary, srv


def test_commands_answered_like_a_sinotrack() -> None:
    summary, srv = asyncio.run(_commands_scenario())
    h02_dev, jt_dev = summary.devices
    h02_answers = [a.decode() for a in srv.answers[h02_dev.ident]]
    assert any(a.startswith(f"*HQ,{h02_dev.ident},V4,S20,DONE,010203,") for a in h02_answers)
    s20 = next(a for a in h02_answers if ",V4,S20," in a)
    assert int(s20.rstrip("#").split(",")[-1], 16) & (1 << 27) == 0  # relay now engaged
    assert any(a.startswith(f"*HQ,{h02_dev.ident},V4,S71,22,10,010204,") for a in h02_answers)
    assert any(",V4,SCF,0,0,010205," in a for a in h02_answers)
    assert any(",LINK," in a for a in h02_answers)
    assert f"*HQ,{h02_dev.ident},V4,R1,010207#" in h02_answers
    sms = next(a for a in h02_answers if ",SMS," in a)
    assert "VOLT:12.9V" in sms and "\n" in sms
    assert [c.kind for c in h02_dev.commands] == ["S20", "S71", "SCF", "S26", "R1", "RCONF"]
    assert all(c.answered and c.time > 0 for c in h02_dev.commands)

    kinds = [c.kind for c in jt_dev.commands]
    assert kinds == ["0x8103", "0x8104", "0x8105", "0x8300"]
    raw = srv.answers[jt_dev.ident]
    general = [r for r in raw if r[:2] == b"\x00\x01"]
    answered_ids = [struct.unpack_from(">HB", r, 12 + 2)[0] for r in general]
    assert answered_ids == [0x8103, 0x8104, 0x8105, 0x8300]
    assert all(r[12 + 4] == 0 for r in general)
    assert any(r[:2] == b"\x01\x04" for r in raw)
    text = next(r for r in raw if r[:2] == b"\x60\x06")
    assert b"VOLT:12.9V" in text
    _check_accounting(summary, srv)


def test_idents_deterministic_and_disjoint() -> None:
    a = device_plan(SimConfig(protocol="mixed", devices=50, seed=7))
    b = device_plan(SimConfig(protocol="mixed", devices=50, seed=7))
    c = device_plan(SimConfig(protocol="mixed", devices=50, seed=7, ident_offset=50))
    assert a == b
    assert not {i for _, i in a} & {i for _, i in c}
    for proto, ident in a:
        assert ident.isdigit() and len(ident) == (10 if proto == "h02" else 12)
    assert device_plan(SimConfig(protocol="h02", devices=1, seed=0))[0][1] == "7340000000"


def test_route_is_plausible() -> None:
    r = Route(random.Random(3))
    fixes = [r.advance(1_760_000_000 + i * 5, 5.0) for i in range(3000)]
    assert any(not f.ignition for f in fixes) and any(f.ignition for f in fixes)
    assert all(f.speed_kmh == 0 for f in fixes if not f.ignition)
    assert max(f.speed_kmh for f in fixes) < 200
    for a, b in itertools.pairwise(fixes):
        step_m = ((b.lat - a.lat) ** 2 + ((b.lon - a.lon) * 0.9) ** 2) ** 0.5 * 111_320
        assert step_m < 400  # < 200 km/h over 5 s, with slack
    assert Route(random.Random(3)).advance(1, 1.0) == Route(random.Random(3)).advance(1, 1.0)


def test_spread_devices_over_several_servers() -> None:
    """``--spread``: device i talks to server i modulo their number (nodes without a balancer)."""

    async def main() -> tuple[Summary, FakeServer, FakeServer]:
        one, two = FakeServer(), FakeServer()
        await one.start()
        await two.start()
        try:
            cfg = _cfg(one, protocol="mixed", spread=[(one.h02_port, one.jt808_port),
                                                      (two.h02_port, two.jt808_port)])
            return await run(cfg), one, two
        finally:
            await one.stop()
            await two.stop()

    summary, one, two = asyncio.run(main())
    assert summary.errors == 0 and summary.acked == summary.sent
    plan = [ident for _, ident in device_plan(SimConfig(protocol="mixed", devices=12, seed=4))]
    assert set(one.positions) == set(plan[0::2]) and set(two.positions) == set(plan[1::2])
    assert sum(one.positions.values()) + sum(two.positions.values()) == summary.sent


def test_spread_option_is_checked() -> None:
    from typer.testing import CliRunner

    from sinogate.cli import app
    from sinogate.cli.simulate import _spread

    assert _spread("5013:5015,6013:6015") == [(5013, 5015), (6013, 6015)]
    for bad in ("5013", "5013:x", "0:5015", "5013:5015,", "70000:5015"):
        result = CliRunner().invoke(app, ["simulate", "--spread", bad, "--devices", "1", "--no-progress"])
        assert result.exit_code != 0 and "H02PORT:JT808PORT" in result.output, (bad, result.output)
