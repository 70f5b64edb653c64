"""Distances on the Earth for the odometer, the jump filter and trips.

Haversine on a sphere of the WGS 84 mean radius (6371.0088 km): within 0.5 % of the geodesic
distance anywhere (usually far better), about 1 µs a call — it runs for every accepted fix, where
an exact geodesic solution in Python (tens of µs) would cost a noticeable share of ingest.
"""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in degrees, in km."""
    if lat1 == lat2 and lon1 == lon2:
        return 0.0
    p1, p2 = radians(lat1), radians(lat2)
    a = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))
