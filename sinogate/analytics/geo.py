"""Distances on the Earth (WGS 84), through geographiclib's geodesic solution."""

from __future__ import annotations

from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance between two points in degrees, in km (accurate to well under a metre)."""
    if lat1 == lat2 and lon1 == lon2:
        return 0.0
    return float(_WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)["s12"]) / 1000.0
