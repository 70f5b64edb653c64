"""HTTP hardening as one ASGI middleware: request body limits and security headers.

- A body larger than its route's limit is refused with 413 before it is read in full: a declared
  ``Content-Length`` is checked up front, a chunked body is counted as it arrives.
  ``max_body`` (config ``http_max_body``, default 8 MiB) applies to message uploads
  (``POST /gw/devices/{sel}/messages``); every other route takes at most ``SMALL_BODY`` (256 KiB).
- While the store takes no writes (disk full, ``server.health``), a write (POST, PUT, PATCH,
  DELETE) is answered 503 with the reason before it reaches a route; reads go on.
- Every response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``Referrer-Policy: no-referrer``; an HTML page without its own policy gets ``CSP`` (scripts and
  connections from this server only; images — map tiles — from anywhere; never framed).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sinogate.server.health import StoreHealth

SMALL_BODY = 256 * 1024
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: http: "
       "https:; connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer")]


class BodyTooLarge(Exception):
    pass


def body_limit(method: str, path: str, max_body: int) -> int:
    if method == "POST" and path.startswith("/gw/devices/") and path.endswith("/messages"):
        return max_body
    return SMALL_BODY


class Hardening:
    def __init__(self, app: ASGIApp, max_body: int, health: StoreHealth | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.health is not None and self.health.degraded and scope["method"] in WRITES:
            await _error(send, 503, str(self.health.status()["reason"]) + "; writes resume by themselves once the "
                         "disk has room", [(b"retry-after", b"30")])
            return
        limit = body_limit(scope["method"], scope["path"], self.max_body)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def secured_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in _HEADERS if h[0] not in names]
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                if html and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted_receive, secured_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    await _error(send, 413, f"request body larger than {limit} bytes")


async def _error(send: Send, status: int, reason: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body: Any = orjson.dumps({"errors": [{"code": status, "reason": reason}]})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
