"""Track exports (KML 2.2, GPX 1.1, CSV), written as a stream in constant memory.

``export_track(messages, fmt, ...)`` turns an async iterator of messages (in time order) into an
async iterator of byte chunks; only the detected stops are kept in memory (they go after the
track in KML). Shared by ``GET /gw/devices/{id}/track`` and ``sinogate export``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

FORMATS = ("kml", "gpx", "csv")
CONTENT_TYPES = {
    "kml": "application/vnd.google-earth.kml+xml",
    "gpx": "application/gpx+xml",
    "csv": "text/csv; charset=utf-8",
}
CHUNK = 1 << 16
STOP_SPEED = 1.0  # km/h: at or below this the vehicle stands
CSV_COLUMNS = (
    "timestamp", "time", "latitude", "longitude", "altitude", "speed", "direction", "satellites", "valid",
    "ignition",
)
_CSV_SOURCES = {
    "latitude": "position.latitude", "longitude": "position.longitude", "altitude": "position.altitude",
    "speed": "position.speed", "direction": "position.direction", "satellites": "position.satellites",
    "valid": "position.valid", "ignition": "engine.ignition.status",
}
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    return escape(_XML_BAD.sub("", str(value)))


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def position(m: dict[str, Any]) -> tuple[float, float] | None:
    """(lat, lon) of a message with a usable fix, else None."""
    if m.get("position.valid") is False:
        return None
    lat, lon = _num(m.get("position.latitude")), _num(m.get("position.longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


@dataclass
class Stop:
    lat: float
    lon: float
    begin: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.begin


class StopDetector:
    """A stop: speed at or below ``STOP_SPEED`` for at least ``min_seconds``."""

    def __init__(self, min_seconds: float) -> None:
        self.min_seconds = min_seconds
        self.stops: list[Stop] = []
        self._open: Stop | None = None

    def feed(self, ts: float, lat: float, lon: float, speed: float | None) -> None:
        if speed is None:
            if self._open is not None:
                self._open.end = ts
            return
        if speed <= STOP_SPEED:
            if self._open is None:
                self._open = Stop(lat, lon, ts, ts)
            else:
                self._open.end = ts
        elif self._open is not None:
            self._open.end = ts
            self._close()

    def _close(self) -> None:
        if self._open is not None and self._open.duration >= self.min_seconds:
            self.stops.append(self._open)
        self._open = None

    def finish(self) -> list[Stop]:
        self._close()
        return self.stops


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class _Writer:
    def __init__(self, name: str, stop_minutes: float, fields: list[str] | None) -> None:
        self.name = name
        self.detector = StopDetector(stop_minutes * 60)
        self.fields = fields
        self.points = 0

    def header(self) -> str:
        return ""

    def point(self, m: dict[str, Any], ts: float, lat: float, lon: float) -> str:
        raise NotImplementedError

    def footer(self) -> str:
        return ""


class KmlWriter(_Writer):
    def __init__(self, name: str, stop_minutes: float, fields: list[str] | None) -> None:
        super().__init__(name, stop_minutes, fields)
        self._first: tuple[float, float, float, float] | None = None  # ts, lat, lon, alt

    def header(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<kml xmlns="http://www.opengis.net/kml/2.2">\n<Document>\n'
            f"<name>{xml_text(self.name)}</name>\n"
            '<Style id="track"><LineStyle><color>ffff5500</color><width>3</width></LineStyle></Style>\n'
            '<Style id="stop"><IconStyle><Icon><href>http://maps.google.com/mapfiles/kml/paddle/red-square.png'
            "</href></Icon></IconStyle></Style>\n"
        )

    def _open_track(self) -> str:
        return (
            "<Placemark>\n<name>Track</name>\n<styleUrl>#track</styleUrl>\n"
            "<LineString>\n<tessellate>1</tessellate>\n<coordinates>\n"
        )

    def point(self, m: dict[str, Any], ts: float, lat: float, lon: float) -> str:
        alt = _num(m.get("position.altitude")) or 0.0
        coord = f"{lon:.6f},{lat:.6f},{alt:.1f}\n"
        if self.points == 1:
            assert self._first is not None
            _, flat, flon, falt = self._first
            return self._open_track() + f"{flon:.6f},{flat:.6f},{falt:.1f}\n" + coord
        if self.points == 0:
            self._first = (ts, lat, lon, alt)
            return ""
        return coord

    def footer(self) -> str:
        parts = []
        if self.points >= 2:
            parts.append("</coordinates>\n</LineString>\n</Placemark>\n")
        elif self.points == 1 and self._first is not None:
            ts, lat, lon, alt = self._first
            parts.append(
                f"<Placemark>\n<name>Position</name>\n<TimeStamp><when>{iso(ts)}</when></TimeStamp>\n"
                f"<Point><coordinates>{lon:.6f},{lat:.6f},{alt:.1f}</coordinates></Point>\n</Placemark>\n"
            )
        for i, stop in enumerate(self.detector.finish(), 1):
            parts.append(
                f"<Placemark>\n<name>Stop {i}</name>\n"
                f"<description>{iso(stop.begin)} – {iso(stop.end)} ({_duration(stop.duration)})</description>\n"
                f"<TimeSpan><begin>{iso(stop.begin)}</begin><end>{iso(stop.end)}</end></TimeSpan>\n"
                "<styleUrl>#stop</styleUrl>\n"
                f"<Point><coordinates>{stop.lon:.6f},{stop.lat:.6f},0</coordinates></Point>\n</Placemark>\n"
            )
        parts.append("</Document>\n</kml>\n")
        return "".join(parts)


class GpxWriter(_Writer):
    def header(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="sinogate" xmlns="http://www.topografix.com/GPX/1/1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd">\n'
            f"<metadata><name>{xml_text(self.name)}</name><time>{iso(time.time())}</time></metadata>\n"
            f"<trk>\n<name>{xml_text(self.name)}</name>\n<trkseg>\n"
        )

    def point(self, m: dict[str, Any], ts: float, lat: float, lon: float) -> str:
        parts = [f'<trkpt lat="{lat:.6f}" lon="{lon:.6f}">']
        alt = _num(m.get("position.altitude"))
        if alt is not None:
            parts.append(f"<ele>{alt:.1f}</ele>")
        parts.append(f"<time>{iso(ts)}</time>")
        sat = _num(m.get("position.satellites"))
        if sat is not None and sat >= 0:
            parts.append(f"<sat>{int(sat)}</sat>")
        hdop = _num(m.get("position.hdop"))
        if hdop is not None:
            parts.append(f"<hdop>{hdop:g}</hdop>")
        parts.append("</trkpt>\n")
        return "".join(parts)

    def footer(self) -> str:
        return "</trkseg>\n</trk>\n</gpx>\n"


class CsvWriter(_Writer):
    def __init__(self, name: str, stop_minutes: float, fields: list[str] | None) -> None:
        super().__init__(name, stop_minutes, fields)
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, lineterminator="\n")

    def _row(self, row: list[Any]) -> str:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerow(row)
        return self._buf.getvalue()

    def header(self) -> str:
        return self._row(list(self.fields or CSV_COLUMNS))

    def point(self, m: dict[str, Any], ts: float, lat: float, lon: float) -> str:
        if self.fields:
            return self._row([_cell(m.get(f)) for f in self.fields])
        row: list[Any] = [f"{ts:.3f}".rstrip("0").rstrip("."), iso(ts), f"{lat:.6f}", f"{lon:.6f}"]
        row += [_cell(m.get(_CSV_SOURCES[c])) for c in CSV_COLUMNS[4:]]
        return self._row(row)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


WRITERS: dict[str, type[_Writer]] = {"kml": KmlWriter, "gpx": GpxWriter, "csv": CsvWriter}


async def export_track(
    messages: AsyncIterator[dict[str, Any]],
    fmt: str,
    name: str,
    stop_minutes: float = 5.0,
    fields: list[str] | None = None,
    accept: Callable[[dict[str, Any]], bool] | None = None,
    count: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> AsyncIterator[bytes]:
    """Byte chunks of the export; ``progress(ts)`` is called with each message's timestamp."""
    writer = WRITERS[fmt](name, stop_minutes, fields)
    parts: list[str] = [writer.header()]
    size = len(parts[0])
    async for m in messages:
        ts = _num(m.get("timestamp"))
        if ts is None:
            continue
        if progress is not None:
            progress(ts)
        if accept is not None and not accept(m):
            continue
        pos = position(m)
        if pos is None:
            continue
        if count is not None and writer.points >= count:
            break
        lat, lon = pos
        writer.detector.feed(ts, lat, lon, _num(m.get("position.speed")))
        text = writer.point(m, ts, lat, lon)
        writer.points += 1
        if text:
            parts.append(text)
            size += len(text)
            if size >= CHUNK:
                yield "".join(parts).encode("utf-8")
                parts, size = [], 0
    parts.append(writer.footer())
    yield "".join(parts).encode("utf-8")


def filename(device: dict[str, Any], fmt: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(device.get("name") or device.get("ident") or device.get("id")))
    return f"{base or 'track'}.{fmt}"
