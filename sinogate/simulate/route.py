"""Plausible vehicle movement: a seeded random walk along headings.

Each simulated device owns one ``Route``. ``advance(dt)`` moves the vehicle by ``dt`` seconds of
*device* time and returns a ``Fix``. The walk has driving phases (speed drifts towards a target,
heading turns gently, now and then a sharper turn), stops with the ignition off, and rare alarms:
SOS for one report, power cut for a few reports. Everything is driven by a ``random.Random`` seeded
per device, so a run is reproducible from ``--seed``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# Start points: (lat, lon) of cities where these trackers are common.
CITIES: tuple[tuple[float, float], ...] = (
    (22.5431, 114.0579),  # Shenzhen
    (23.1291, 113.2644),  # Guangzhou
    (4.7110, -74.0721),  # Bogotá
    (6.5244, 3.3792),  # Lagos
    (-23.5505, -46.6333),  # São Paulo
    (19.4326, -99.1332),  # Mexico City
    (-33.9249, 18.4241),  # Cape Town
    (41.0082, 28.9784),  # Istanbul
    (-37.8136, 144.9631),  # Melbourne
    (50.4501, 30.5234),  # Kyiv
)

M_PER_DEG = 111_320.0
DEG = math.pi / 180.0


@dataclass(slots=True)
class Fix:
    """One position sample as a tracker would report it."""

    ts: int
    lat: float
    lon: float
    speed_kmh: float
    course: int
    altitude: int
    ignition: bool
    sos: bool
    power_cut: bool
    satellites: int
    rssi: int
    odometer_m: float
    valid: bool = True


class Route:
    def __init__(self, rng: random.Random, *, alarm_rate: float = 0.002) -> None:
        self.rng = rng
        base = CITIES[rng.randrange(len(CITIES))]
        self.lat = base[0] + rng.uniform(-0.08, 0.08)
        self.lon = base[1] + rng.uniform(-0.08, 0.08)
        self.heading = rng.uniform(0.0, 360.0)
        self.speed = 0.0  # km/h
        self.target = rng.uniform(20.0, 90.0)
        self.ignition = True
        self.phase_left = rng.uniform(120.0, 1800.0)  # seconds of device time in this phase
        self.altitude = rng.randint(5, 2600)
        self.odometer = rng.uniform(1_000.0, 300_000_000.0)  # metres
        self.alarm_rate = alarm_rate
        self.power_cut_left = 0
        self.satellites = rng.randint(6, 14)
        self.rssi = rng.randint(12, 31)

    def advance(self, ts: int, dt: float) -> Fix:
        rnd = self.rng.random
        self.phase_left -= dt
        if self.phase_left <= 0:
            # Toggle between driving and parked (ignition off).
            self.ignition = not self.ignition
            rng = self.rng
            self.phase_left = rng.uniform(300.0, 2400.0) if self.ignition else rng.uniform(60.0, 900.0)
            self.target = rng.uniform(15.0, 100.0)
        if self.ignition:
            # speed relaxes towards the target with noise; uniform noise is cheaper than gauss
            self.speed += (self.target - self.speed) * min(1.0, 0.15 * dt) + (rnd() - 0.5) * 6.0
            if self.speed < 0.0:
                self.speed = 0.0
            r = rnd()
            if r < 0.02:
                self.heading += 90.0 if r < 0.01 else -90.0  # a turn at a junction
                self.target = 15.0 + rnd() * 85.0
            else:
                self.heading += (rnd() - 0.5) * 12.0
            self.heading %= 360.0
            dist = self.speed / 3.6 * dt
            rad = self.heading * DEG
            self.lat += dist * math.cos(rad) / M_PER_DEG
            self.lon += dist * math.sin(rad) / (M_PER_DEG * max(0.05, math.cos(self.lat * DEG)))
            if self.lat > 85.0 or self.lat < -85.0:
                self.heading = (self.heading + 180.0) % 360.0
                self.lat = max(-85.0, min(85.0, self.lat))
            if self.lon > 180.0:
                self.lon -= 360.0
            elif self.lon < -180.0:
                self.lon += 360.0
            self.odometer += dist
        else:
            self.speed = 0.0
        r = rnd()
        if r < 0.05:
            step = 1 if r < 0.025 else -1
            self.satellites = max(3, min(20, self.satellites + step))
            self.rssi = max(5, min(31, self.rssi - step))
        sos = False
        if self.alarm_rate and rnd() < self.alarm_rate:
            if rnd() < 0.5:
                sos = True
            else:
                self.power_cut_left = 2 + int(rnd() * 5)
        power_cut = self.power_cut_left > 0
        if power_cut:
            self.power_cut_left -= 1
        return Fix(
            ts,
            self.lat,
            self.lon,
            self.speed,
            int(self.heading) % 360,
            self.altitude,
            self.ignition,
            sos,
            power_cut,
            self.satellites,
            self.rssi,
            self.odometer,
        )
