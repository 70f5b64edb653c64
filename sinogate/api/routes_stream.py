"""``GET /gw/devices/{selector}/stream``: Server-Sent Events of what happens to devices, live.

Each event is ``event: message|packet|command|log|event|interval`` (``event``: an analytics event,
``interval``: a calculator's interval opened, updated or closed) with ``data:`` the bus event as JSON
(``{"type", "device_id", "protocol", "ident", "data"}``). A comment line ``: connected`` opens the
stream (the subscription is in place from then on) and ``: heartbeat`` comes every 15 s of
silence. Browsers' ``EventSource`` cannot send headers, so ``?token=`` is accepted on this GET (and
only here). A limited token is re-checked every few seconds: once deleted or expired, the stream
sends ``event: error`` and ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, dumps, get_context, parse_selector, resolve_devices
from sinogate.store.base import NotFound

router = APIRouter(tags=["live"])

EVENT_TYPES = ("message", "packet", "command", "log", "event", "interval")


def _accept(ctx: ApiContext, selector: str, auth: Auth) -> Any:
    sel = parse_selector(selector)
    fixed = None
    if sel.ids is not None:  # 403/404 for explicit ids, before streaming
        fixed = {d["id"] for d in resolve_devices(ctx, selector, auth)}

    def accept(event: dict[str, Any]) -> bool:  # (the bus offers only the stream's types)
        device_id = event.get("device_id")
        if device_id is None:
            return False
        if fixed is not None:
            return device_id in fixed
        try:  # "all" and patterns follow devices created or renamed while the stream is open
            device = ctx.devices.get(device_id)
        except NotFound:
            return False
        return sel.matches(device) and auth.allows(device)

    return accept


@router.get(
    "/gw/devices/{selector}/stream",
    summary="Live Server-Sent Events: messages, packets, commands, connection logs, analytics events, intervals",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    selector: str,
    types: Annotated[str | None, Query(description=f"comma list of {','.join(EVENT_TYPES)} (default all)")] = None,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> StreamingResponse:
    wanted = set(EVENT_TYPES)
    if types:
        wanted = {t.strip() for t in types.split(",") if t.strip()}
        unknown = wanted - set(EVENT_TYPES)
        if unknown or not wanted:
            raise ApiError(400, f"unknown event type(s) {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}", 400)
    accept = _accept(ctx, selector, auth)
    heartbeat = ctx.heartbeat

    async def events() -> AsyncIterator[str]:
        sub = ctx.bus.subscribe(accept, viewer=True, types=frozenset(wanted))
        try:
            yield "retry: 3000\n: connected\n\n"
            last = time.monotonic()
            reported = 0
            recheck = last + ctx.token_recheck
            while not ctx.stopping:
                if not auth.master and time.monotonic() >= recheck:
                    # A deleted or expired token ends the stream within token_recheck seconds.
                    recheck = time.monotonic() + ctx.token_recheck
                    if await ctx.tokens.lookup(auth.token) is None:
                        yield f"event: error\ndata: {dumps({'reason': 'token deleted or expired'})}\n\n"
                        return
                try:
                    event = await asyncio.wait_for(sub.get(), min(1.0, heartbeat))
                except TimeoutError:
                    if time.monotonic() - last >= heartbeat:
                        last = time.monotonic()
                        yield ": heartbeat\n\n"
                    continue
                if sub.dropped != reported:
                    yield f"event: dropped\ndata: {dumps({'dropped': sub.dropped - reported})}\n\n"
                    reported = sub.dropped
                last = time.monotonic()
                yield f"event: {event['type']}\ndata: {dumps(event)}\n\n"
        finally:
            ctx.bus.unsubscribe(sub)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
