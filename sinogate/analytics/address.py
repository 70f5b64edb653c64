"""Reverse geocoding for the ``address`` plugin.

Offline by default: the ``reverse_geocode`` package ships GeoNames' cities (population > 1000) and
finds the nearest in ~35 µs, so it runs inline in phase 1: ``position.address`` is
``"<city>, <state>, <country>"`` plus ``address.city``, ``address.state``, ``address.country``,
``address.country_code``. City level: it names the nearest town, not the street.

With a Nominatim-compatible ``url`` (street level), a lookup is a network round trip that must never
hold up a device's acknowledgement, and Nominatim's usage policy allows one request per second. So
phase 1 only reads a cache (positions rounded to 4 decimals, ≈ 11 m); a miss stores the message with
the offline (city-level) address and queues the position for a background worker that asks the
service at most ``min_interval`` apart; later messages at that place get the street address. The
stored message never waits for the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import httpx
import reverse_geocode

log = logging.getLogger("sinogate.address")

CACHE_SIZE = 20_000
QUEUE_SIZE = 1_000


def offline_address(lat: float, lon: float) -> dict[str, Any]:
    place = reverse_geocode.get((lat, lon))
    parts = [p for p in (place.get("city"), place.get("state"), place.get("country")) if p]
    out: dict[str, Any] = {"position.address": ", ".join(parts)}
    for key in ("city", "state", "country", "country_code"):
        if place.get(key):
            out[f"address.{key}"] = place[key]
    return out


class AddressBook:
    """Implements the plugin's ``address(lat, lon, url)``; ``run()`` is the background worker."""

    def __init__(self, min_interval: float = 1.0, timeout: float = 5.0) -> None:
        self.min_interval = min_interval
        self.timeout = timeout
        self._cache: OrderedDict[tuple[str, float, float], dict[str, Any]] = OrderedDict()
        self._queue: asyncio.Queue[tuple[str, float, float]] | None = None
        self._queued: set[tuple[str, float, float]] = set()
        self.dropped = 0
        self.failures = 0
        self.lookups = 0

    def address(self, lat: float, lon: float, url: str | None) -> dict[str, Any] | None:
        if url:
            key = (url, round(lat, 4), round(lon, 4))
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
            self._request(key)
        return offline_address(lat, lon)

    def _request(self, key: tuple[str, float, float]) -> None:
        if self._queue is None or key in self._queued:
            return
        try:
            self._queue.put_nowait(key)
            self._queued.add(key)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        """Asks the service for queued positions, one at a time, ``min_interval`` apart."""
        self._queue = asyncio.Queue(QUEUE_SIZE)
        async with httpx.AsyncClient(timeout=self.timeout, headers={"User-Agent": "sinogate"}) as client:
            while True:
                key = await self._queue.get()
                self._queued.discard(key)
                url, lat, lon = key
                try:
                    r = await client.get(url.rstrip("/") + "/reverse",
                                         params={"format": "jsonv2", "lat": lat, "lon": lon})
                    r.raise_for_status()
                    self._remember(key, _parse(r.json()))
                    self.lookups += 1
                except (httpx.HTTPError, ValueError) as exc:
                    self.failures += 1
                    log.warning("reverse geocoding %s,%s at %s failed: %s", lat, lon, url, exc)
                await asyncio.sleep(self.min_interval)

    def _remember(self, key: tuple[str, float, float], value: dict[str, Any]) -> None:
        self._cache[key] = value
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def _parse(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("display_name"), str):
        raise ValueError("the answer has no display_name")
    out: dict[str, Any] = {"position.address": body["display_name"]}
    found = body.get("address")
    parts: dict[str, Any] = found if isinstance(found, dict) else {}
    city = parts.get("city") or parts.get("town") or parts.get("village")
    for key, value in (("city", city), ("state", parts.get("state")), ("country", parts.get("country")),
                       ("country_code", (parts.get("country_code") or "").upper() or None),
                       ("road", parts.get("road")), ("house_number", parts.get("house_number")),
                       ("postcode", parts.get("postcode"))):
        if value:
            out[f"address.{key}"] = value
    return out
