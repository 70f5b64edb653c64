"""``GET /gw/devices/{selector}/track``: a device's track as KML 2.2, GPX 1.1 or CSV, streamed."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from sinogate.api.context import ApiContext
from sinogate.api.deps import Auth, DataParam, authenticate, get_context, parse_data, resolve_one_device
from sinogate.api.export import CONTENT_TYPES, export_track, filename

router = APIRouter(tags=["exports"])


@router.get(
    "/gw/devices/{selector}/track",
    summary="Track export: KML 2.2 (track + stops), GPX 1.1 or CSV; streamed in constant memory",
    response_class=StreamingResponse,
    responses={200: {"content": {CONTENT_TYPES["kml"]: {}, CONTENT_TYPES["gpx"]: {}, "text/csv": {}}}},
)
async def track(
    request: Request,
    selector: str,
    data: DataParam = None,
    format: Annotated[Literal["kml", "gpx", "csv"], Query(description="kml, gpx or csv")] = "kml",
    stop_minutes: Annotated[
        float | None, Query(ge=0, le=1440, description="a stop is speed ~0 for at least this long (KML)")
    ] = None,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> StreamingResponse:
    query = parse_data(data)
    device = resolve_one_device(ctx, selector, auth)
    minutes = stop_minutes if stop_minutes is not None else get_context(request).stop_minutes
    messages = ctx.store.iter_messages(device["id"], query.time_query(with_count=False))
    body = export_track(
        messages, format, str(device.get("name") or device.get("ident")), minutes,
        fields=query.fields, accept=query.filter.matches if query.filter else None, count=query.count,
    )
    return StreamingResponse(
        body,
        media_type=CONTENT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename(device, format)}"'},
    )
