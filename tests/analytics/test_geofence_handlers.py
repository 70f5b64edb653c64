"""Geofencing and overspeed handlers on synthetic tracks, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from geographiclib.geodesic import Geodesic

from sinogate.analytics.geofences import GeofenceService
from sinogate.pipeline.base import Context, Handler, Message
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.geofencing import Geofencing
from sinogate.pipeline.overspeed import Overspeed
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.time_sanity import TimeSanity
from tests.analytics.kv import DictKV

T0 = 1_750_000_000.0
G = Geodesic.WGS84
DEPOT = (52.5200, 13.4050)


def at(lat: float, lon: float, azimuth: float, km: float) -> tuple[float, float]:
    out = G.Direct(lat, lon, azimuth, km * 1000.0)
    return out["lat2"], out["lon2"]


def pt(lat: float, lon: float) -> dict[str, float]:
    return {"lat": lat, "lon": lon}


def fix(ts: float, where: tuple[float, float], speed: float = 30.0, **extra: Any) -> Message:
    return {"timestamp": ts, "position.latitude": where[0], "position.longitude": where[1],
            "position.valid": True, "position.speed": speed, **extra}


class Probe(Handler):
    """Records what the handlers before it told the later ones."""

    name = "probe"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.seen: list[dict[str, Any]] = []

    def handle(self, message: Message, ctx: Context) -> Message:
        self.seen.append({k: ctx.scratch[k] for k in ("geofences", "speed_limit") if k in ctx.scratch})
        return message


class Fleet:
    """Geofences in a memory store, and one pipeline + state per device, like the ingest service."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.geofences = GeofenceService(DictKV())
        self.loop.run_until_complete(self.geofences.load())
        self.config = config or {}
        self.probe = Probe(self.config)
        self.pipeline = Pipeline([TimeSanity(self.config), Filters(self.config),
                                  Geofencing(self.config, self.geofences), Overspeed(self.config), self.probe])
        self.states: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.loop.close()

    def fence(self, name: str, geometry: dict[str, Any], **fields: Any) -> int:
        [made] = self.loop.run_until_complete(self.geofences.create([{"name": name, "geometry": geometry, **fields}]))
        return int(made["id"])

    def circle(self, name: str, center: tuple[float, float], radius: float, **fields: Any) -> int:
        return self.fence(name, {"type": "circle", "center": pt(*center), "radius": radius}, **fields)

    def feed(self, device: dict[str, Any] | None, *messages: Message) -> list[dict[str, Any]]:
        """Runs one batch; returns the events it emitted."""
        states = None if device is None else self.states.setdefault(device["id"], {})
        ctx = Context("h02", "tcp", "peer", T0 + 86_400, device, 1, 1, states)
        self.pipeline.run([{"ident": "1", **m} for m in messages], ctx)
        self.events += ctx.events
        return ctx.events


@pytest.fixture
def fleet() -> Any:
    f = Fleet()
    yield f
    f.close()


VAN: dict[str, Any] = {"id": 1, "name": "van-1", "settings": {}}
TRUCK: dict[str, Any] = {"id": 2, "name": "truck-7", "settings": {}}


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], e.get("geofence.name")) for e in events]


def test_a_depot_circle_leave_and_return(fleet: Fleet) -> None:
    depot = fleet.circle("depot", DEPOT, 0.2)
    out = [at(*DEPOT, 90, km) for km in (0.05, 0.15, 0.25, 1.0, 3.0, 1.0, 0.3, 0.19, 0.0)]
    events = fleet.feed(VAN, *(fix(T0 + 60 * i, p) for i, p in enumerate(out)))
    assert kinds(events) == [("geofence.enter", "depot"), ("geofence.exit", "depot"), ("geofence.enter", "depot")]
    enter, leave, back = events
    assert enter["timestamp"] == T0 and leave["timestamp"] == T0 + 120 and back["timestamp"] == T0 + 420
    assert leave["geofence.id"] == depot and leave["device.id"] == 1
    assert (leave["position.latitude"], leave["position.longitude"]) == out[2]
    assert fleet.probe.seen[2] == {"geofences": {}} and fleet.probe.seen[8] == {"geofences": {depot: "depot"}}
    assert fleet.states[1]["geofencing"] == {"inside": {str(depot): "depot"}}


def test_a_drive_through_a_polygon(fleet: Fleet) -> None:
    # a town block 2 km × 1 km east of the depot; the road runs west → east through it
    corners = [at(*DEPOT, 90, 1.0), at(*DEPOT, 90, 3.0)]
    north = [at(*c, 0, 0.5) for c in corners]
    south = [at(*c, 180, 0.5) for c in corners]
    town = fleet.fence("town", {"type": "polygon", "path": [pt(*north[0]), pt(*north[1]), pt(*south[1]),
                                                              pt(*south[0]), pt(*north[0])]})
    track = [at(*DEPOT, 90, km) for km in (0.0, 0.5, 0.9, 1.1, 2.0, 2.9, 3.1, 4.0)]
    events = fleet.feed(VAN, *(fix(T0 + 30 * i, p) for i, p in enumerate(track)))
    assert kinds(events) == [("geofence.enter", "town"), ("geofence.exit", "town")]
    assert [e["timestamp"] for e in events] == [T0 + 90, T0 + 180]
    assert {e["geofence.id"] for e in events} == {town}


def test_a_corridor_along_a_road(fleet: Fleet) -> None:
    road = [(48.100, 11.500), (48.120, 11.540), (48.125, 11.600)]
    fleet.fence("A99", {"type": "corridor", "path": [pt(*p) for p in road], "width": 0.1})
    line = G.InverseLine(*road[0], *road[1])

    def beside(fraction: float, metres: float) -> tuple[float, float]:
        p = line.Position(line.s13 * fraction)
        return at(p["lat2"], p["lon2"], p["azi2"] + 90, metres / 1000.0)

    track = [beside(0.1, 10), beside(0.3, -40), beside(0.5, 80), beside(0.7, 20), road[2],
             at(*road[2], 45, 0.2)]
    events = fleet.feed(VAN, *(fix(T0 + 120 * i, p) for i, p in enumerate(track)))
    assert [(e["type"], e["timestamp"]) for e in events] == [
        ("geofence.enter", T0), ("geofence.exit", T0 + 240), ("geofence.enter", T0 + 360), ("geofence.exit", T0 + 600)]


def test_a_fence_for_some_devices_only(fleet: Fleet) -> None:
    yard = fleet.circle("truck yard", DEPOT, 0.5, devices="name=truck*")
    inside, outside = fix(T0, DEPOT), fix(T0 + 60, at(*DEPOT, 0, 2.0))
    assert kinds(fleet.feed(TRUCK, inside, outside)) == [("geofence.enter", "truck yard"),
                                                          ("geofence.exit", "truck yard")]
    assert fleet.feed(VAN, inside, outside) == []
    # A truck renamed while inside: the fence no longer applies, its membership ends silently.
    fleet.feed(TRUCK, fix(T0 + 120, DEPOT))
    assert fleet.states[2]["geofencing"]["inside"] == {str(yard): "truck yard"}
    assert fleet.feed({**TRUCK, "name": "lorry"}, fix(T0 + 180, DEPOT)) == []
    assert fleet.states[2]["geofencing"]["inside"] == {}


def test_a_fence_deleted_while_inside_ends_silently(fleet: Fleet) -> None:
    depot = fleet.circle("depot", DEPOT, 0.2)
    fleet.circle("city", DEPOT, 10.0)
    fleet.feed(VAN, fix(T0, DEPOT))
    fleet.loop.run_until_complete(fleet.geofences.delete(depot))
    assert fleet.feed(VAN, fix(T0 + 60, DEPOT)) == []
    assert list(fleet.states[1]["geofencing"]["inside"].values()) == ["city"]
    assert fleet.feed(VAN, fix(T0 + 3600, at(*DEPOT, 0, 20.0)))[0]["geofence.name"] == "city"


def test_late_and_filtered_fixes_move_nothing(fleet: Fleet) -> None:
    fleet.circle("depot", DEPOT, 0.2, speed_limit=20)
    away = at(*DEPOT, 90, 5.0)
    fleet.feed(VAN, fix(T0 + 600, away))  # the last accepted fix
    # a buffered batch from the past, inside the depot, speeding: no events, no membership
    assert fleet.feed(VAN, fix(T0 + 100, DEPOT, 90.0), fix(T0 + 200, DEPOT, 95.0)) == []
    assert fleet.states[1]["geofencing"]["inside"] == {}
    assert fleet.probe.seen[-1] == {"speed_limit": 20.0}  # the limit where the late fix was
    # an invalid fix in the depot and a GPS jump into it
    assert fleet.feed(VAN, fix(T0 + 601, DEPOT, **{"position.valid": False})) == []
    assert fleet.feed(VAN, fix(T0 + 602, DEPOT)) == []  # 5 km in 2 s
    assert fleet.states[1]["geofencing"]["inside"] == {}
    assert fleet.feed(VAN, fix(T0 + 1300, DEPOT))[0]["type"] == "geofence.enter"


def test_messages_of_an_unknown_ident_are_left_alone(fleet: Fleet) -> None:
    fleet.circle("depot", DEPOT, 0.2, speed_limit=20)
    assert fleet.feed(None, fix(T0, DEPOT, 100.0), fix(T0 + 60, DEPOT, 100.0)) == []
    assert fleet.probe.seen == [{}, {}]


# --- overspeed -----------------------------------------------------------------------------------

def drive(fleet: Fleet, device: dict[str, Any], speeds: list[float], start: float = T0, step: float = 5.0,
          where: tuple[float, float] = DEPOT) -> list[dict[str, Any]]:
    return fleet.feed(device, *(fix(start + step * i, where, s) for i, s in enumerate(speeds)))


LIMITED: dict[str, Any] = {"id": 3, "name": "bus", "settings": {"speed_limit": 90}}


def test_a_short_spike_is_no_overspeed(fleet: Fleet) -> None:
    # above 90 at t = 5, 10, 15 s: 10 s long, under 15 s
    assert drive(fleet, LIMITED, [80, 95, 120, 100, 85, 80]) == []


def test_a_long_episode_is_one_event_with_the_max(fleet: Fleet) -> None:
    events = drive(fleet, LIMITED, [80, 95, 110, 100, 99, 130, 120, 85, 80])
    assert len(events) == 1
    [event] = events
    assert event["type"] == "overspeed" and event["timestamp"] == T0 + 20  # 15 s after the first fix above
    assert event["position.speed"] == 110 and event["speed.limit"] == 90.0  # the max so far
    assert "position.latitude" in event
    # the episode ended at 85; a new one fires again
    again = drive(fleet, LIMITED, [100, 100, 100, 100], start=T0 + 100)
    assert [e["position.speed"] for e in again] == [100]
    # at the limit exactly is not above it
    assert drive(fleet, LIMITED, [90] * 10, start=T0 + 200) == []


def test_the_minimum_duration_is_a_setting(fleet: Fleet) -> None:
    quick = {**LIMITED, "id": 4, "settings": {"speed_limit": 90, "overspeed_min_duration": 0}}
    assert [e["position.speed"] for e in drive(fleet, quick, [80, 95, 80])] == [95]
    patient = Fleet({"overspeed_min_duration": 60})
    try:
        assert drive(patient, LIMITED, [100] * 12) == []  # 55 s
        assert len(drive(patient, LIMITED, [100] * 2, start=T0 + 60)) == 1
    finally:
        patient.close()


def test_a_fence_limit_below_the_device_setting_applies_inside(fleet: Fleet) -> None:
    school = fleet.circle("school zone", DEPOT, 0.3, speed_limit=30)
    fleet.circle("no limit", DEPOT, 0.3)
    events = drive(fleet, LIMITED, [40, 45, 50, 45, 40])
    assert [(e["type"], e.get("speed.limit"), e.get("position.speed")) for e in events] == [
        ("geofence.enter", None, None), ("geofence.enter", None, None), ("overspeed", 30.0, 50)]
    assert fleet.probe.seen[0] == {"geofences": {school: "school zone", school + 1: "no limit"}, "speed_limit": 30.0}
    # outside the zone the device's own 90 applies
    away = at(*DEPOT, 0, 2.0)
    assert [e["type"] for e in drive(fleet, LIMITED, [60] * 5, start=T0 + 100, where=away)] == ["geofence.exit"] * 2
    assert fleet.probe.seen[-1] == {"geofences": {}, "speed_limit": 90.0}
    # a device without a setting: only the fence limits it
    free = {"id": 5, "name": "free", "settings": {}}
    assert drive(fleet, free, [150] * 5, where=away) == []
    assert fleet.probe.seen[-1] == {"geofences": {}}
    assert [e["type"] for e in drive(fleet, free, [35] * 5, start=T0 + 100)][-1] == "overspeed"


def test_a_message_without_a_fix_keeps_the_limit_of_where_the_device_is(fleet: Fleet) -> None:
    fleet.circle("school zone", DEPOT, 0.3, speed_limit=30)
    fleet.feed(VAN, fix(T0, DEPOT))
    fleet.feed(VAN, {"timestamp": T0 + 10, "engine.ignition.status": True})
    assert fleet.probe.seen[-1] == {"speed_limit": 30.0}


def test_a_late_message_fires_no_overspeed(fleet: Fleet) -> None:
    drive(fleet, LIMITED, [50], start=T0 + 1000)
    assert drive(fleet, LIMITED, [150] * 10) == []
    assert fleet.states[3]["overspeed"] == {}
