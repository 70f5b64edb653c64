"""What each device (and each model) has been seen to answer: ``GET /gw/devices/{sel}/command-support``
and ``GET /gw/command-support?data={"model": "ST906*"}`` (see ``sinogate.commands.support``)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, get_context, resolve_devices, result
from sinogate.commands.support import CommandSupport

router = APIRouter(tags=["commands"])


def _support(ctx: ApiContext) -> CommandSupport:
    if ctx.support is None:
        raise ApiError(404, "command support is not kept by this server", 404)
    return ctx.support


@router.get("/gw/devices/{selector}/command-support",
            summary="Per command (name and raw code): sent, answered, ignored, failed; alternatives that worked")
async def device_support(selector: str, auth: Auth = Depends(authenticate),
                         ctx: ApiContext = Depends(get_context)) -> Response:
    return result(_support(ctx).for_devices(resolve_devices(ctx, selector, auth)))


@router.get("/gw/command-support", summary="Command support summed per device model (data: {\"model\": …})")
async def model_support(data: str | None = Query(None, description='{"model": "ST906*"} (wildcards allowed)'),
                        auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    model: str | None = None
    if data:
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise ApiError(400, f"data is not valid JSON: {exc}", 400) from exc
        if not isinstance(parsed, dict) or set(parsed) - {"model"}:
            raise ApiError(400, 'data must be an object like {"model": "ST906"}', 400)
        model = parsed.get("model")
        if model is not None and not isinstance(model, str):
            raise ApiError(400, "data.model must be a string", 400)
    return result(_support(ctx).for_models(resolve_devices(ctx, "all", auth), model))
