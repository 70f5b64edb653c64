"""The web app: ``/`` (the page), ``/assets/...`` (its ES modules, styles and vendored libraries),
``/docs`` (Swagger UI from the vendored assets, so it works offline) and ``/web/config`` (what the
page needs to know about the server and the token it was given).

The page holds no data; it asks for the API token and calls the same REST API and live stream as
every other client. Nothing is loaded from a CDN: the browser libraries are vendored under
``sinogate/web/vendor/`` (``make vendor`` refreshes them from the npm registry).
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import Auth, authenticate, get_context, result
from sinogate.pipeline.chain import HANDLERS

router = APIRouter()

WEB = files("sinogate.web")
ASSET_DIRS = ("js", "css", "img", "vendor")
DEFAULT_TILES_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TILES_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
# Destructive commands are refused by the page while the device reports a speed above this (km/h)
# unless the user forces them; a device's setting of the same name overrides it.
ENGINE_STOP_MAX_SPEED = 20.0

# Device settings the page offers in its settings form. Codec settings first, then the options of
# the pipeline handlers (their server defaults), then settings only the page and the command
# guard read. Unknown handler options still appear, typed from their default.
_CODEC_SETTINGS: dict[str, dict[str, Any]] = {
    "time_offset": {"type": "number", "minimum": -24, "maximum": 24, "title": "Time offset (h)",
                    "description": "Hours the device clock is ahead of UTC, applied as is. Empty (auto, the default): "
                                   "the protocol's zone (H02 UTC, JT/T 808 GMT+8), and a clock found off by whole "
                                   "hours is detected and corrected."},
    "sms_password": {"type": "string", "maxLength": 16, "title": "SMS password",
                     "description": "Password in SMS-style commands (default 0000)."},
    "speed_limit": {"type": "number", "minimum": 0, "title": "Speed limit (km/h)",
                    "description": "Overspeed events above this speed."},
    "engine_stop_max_speed": {"type": "number", "minimum": 0, "default": ENGINE_STOP_MAX_SPEED,
                              "title": "Destructive commands: max speed (km/h)",
                              "description": "engine.stop and other destructive commands are refused while "
                                             "the device reports a higher speed, unless forced."},
    "h02_ack": {"type": "boolean", "title": "H02 R12 ack", "x-protocols": ["h02"],
                "description": "Send the H02 R12 acknowledgement (some ST-901L firmware needs it)."},
    "h02_binary_length": {"type": "integer", "minimum": 29, "maximum": 128, "title": "H02 binary length",
                          "x-protocols": ["h02"],
                          "description": "Length of the device's H02 '$' frames (32, 37, 42, 45, 46, 47, 48 seen); "
                                         "learned by itself, this only makes the first frames certain."},
    "jt808_strict": {"type": "boolean", "title": "JT/T 808 strict", "x-protocols": ["jt808"],
                     "description": "Drop frames with a bad checksum instead of decoding them leniently."},
}
_OPTION_TEXT: dict[str, tuple[str, str]] = {
    "time_max_ahead": ("Max time ahead (s)", "Messages dated further in the future are flagged."),
    "filter_max_speed": ("Jump filter (km/h)", "A fix implying a higher speed from the previous one is flagged."),
    "filter_invalid": ("Filter invalid fixes", "Fixes the device marks invalid move no analytics."),
    "filter_zero": ("Filter 0,0 fixes", "Fixes at 0,0 move no analytics."),
    "offline_after": ("Offline after (s)", "No message or connection this long: the device is offline."),
    "stop_min_duration": ("Stop min duration (s)", "A trip ends after a stop this long."),
    "trip_max_gap": ("Trip max gap (s)", "A trip ends after a data gap this long."),
    "trip_min_distance": ("Trip min distance (km)", "Shorter trips are not trips."),
    "trip_use_ignition": ("Trips by ignition", "Moving while the ignition is on, instead of by speed."),
    "overspeed_min_duration": ("Overspeed min duration (s)", "Overspeed for at least this long is an episode."),
    "trip_speed": ("Moving speed (km/h)", "At or above this speed the vehicle moves (trips)."),
    "clock_max_ahead": ("Clock max ahead (s)", "Device times further ahead of the server's are flagged."),
    "clock_reports": ("Clock reports", "Real-time reports that must agree before a clock offset is corrected."),
    "clock_tolerance": ("Clock tolerance (s)", "How far from a whole offset a clock may be and still be corrected."),
}


def settings_schema() -> dict[str, Any]:
    """JSON schema of the device ``settings`` object, for the page's settings form."""
    props: dict[str, dict[str, Any]] = dict(_CODEC_SETTINGS)
    for handler in HANDLERS:
        for key, default in handler.options.items():
            if key in props:
                continue
            kind = "boolean" if isinstance(default, bool) else "integer" if isinstance(default, int) else \
                "string" if isinstance(default, str) else "number"
            title, description = _OPTION_TEXT.get(key, (key, f"Option of the {handler.name} handler."))
            props[key] = {"type": kind, "default": default, "title": title, "description": description,
                          "x-handler": handler.name}
    return {"type": "object", "properties": props, "additionalProperties": True}


@router.get("/web/config", tags=["web"], summary="What the web app needs: map tiles, token rights, settings schema")
async def web_config(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    tiles = ctx.extra.get("map_tiles_url", DEFAULT_TILES_URL)
    attribution = ctx.extra.get("map_tiles_attribution") or (
        DEFAULT_TILES_ATTRIBUTION if tiles == DEFAULT_TILES_URL else "")
    return result([{
        "token": {"master": auth.master, "read_only": auth.read_only, "devices": auth.devices},
        "map": {"tiles_url": tiles or "", "attribution": attribution},
        "settings_schema": settings_schema(),
        "engine_stop_max_speed": ctx.extra.get("engine_stop_max_speed", ENGINE_STOP_MAX_SPEED),
    }])


# --- the page and its files ----------------------------------------------------------------------

def _no_cache(body: bytes, media_type: str, etag: str, request: Request) -> Response:
    # Revalidated on every load (cheap: 304 when unchanged), so an upgrade is picked up at once.
    headers = {"Cache-Control": "no-cache", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@lru_cache(maxsize=512)
def _asset(path: str) -> tuple[bytes, str, str] | None:
    parts = path.split("/")
    if len(parts) < 2 or parts[0] not in ASSET_DIRS or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    node: Traversable = WEB
    for part in parts:
        node = node.joinpath(part)
    if not node.is_file():
        return None
    body = node.read_bytes()
    media_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if parts[-1].endswith((".js", ".mjs")):
        media_type = "text/javascript"
    if media_type.startswith("text/") or media_type == "application/json":
        media_type += "; charset=utf-8"
    return body, media_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    body = WEB.joinpath("index.html").read_bytes()
    response = _no_cache(body, "text/html; charset=utf-8", '"' + hashlib.sha256(body).hexdigest()[:20] + '"',
                         request)
    # The page talks to this server only: no inline scripts, no other origins.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; media-src 'self' data:; frame-ancestors 'none'"
    )
    return response


@router.get("/assets/{path:path}", include_in_schema=False)
async def asset(path: str, request: Request) -> Response:
    found = _asset(path)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media_type, etag = found
    return _no_cache(body, media_type, etag, request)


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> Response:
    # Swagger UI from the vendored assets; its start-up script is a file (no inline script).
    body = WEB.joinpath("docs.html").read_bytes()
    return _no_cache(body, "text/html; charset=utf-8", '"' + hashlib.sha256(body).hexdigest()[:20] + '"', request)
