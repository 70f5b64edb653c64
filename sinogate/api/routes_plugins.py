"""``/gw/plugins``: message plugins (expression, erase, carry-forward, lbs, address).

A plugin applies to the next message after it is created or changed, no restart. Each item shows
``status`` (``applied``, ``errors``, ``last_error``) since the server started. Reading needs any
token; changing needs a write token that covers every device (plugins act on any device).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from sinogate.analytics.plugins import TYPES, Plugin, PluginError, compile_plugin
from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, get_context, require_unlimited, require_write, result

router = APIRouter(tags=["plugins"])

EXAMPLE = [{"type": "expression", "name": "speed.mph", "expression": "position.speed * 0.621371", "unit": "mph"}]


def _view(plugin: Plugin) -> dict[str, Any]:
    return {**plugin.definition, "id": plugin.id, "status": plugin.status()}


def _selected(ctx: ApiContext, selector: str) -> list[Plugin]:
    selector = selector.strip()
    plugins = ctx.plugins.all()
    if selector == "all":
        return plugins
    parts = [p.strip() for p in selector.split(",")]
    if not all(p.isascii() and p.isdigit() and len(p) < 10 for p in parts):
        raise ApiError(400, "plugin selector must be 'all' or a list of plugin ids", 400)
    out = []
    for pid in dict.fromkeys(int(p) for p in parts):
        plugin = ctx.plugins.get(pid)
        if plugin is None:
            raise ApiError(404, f"plugin {pid} not found", 404)
        out.append(plugin)
    return out


def _checked(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ApiError(400, "each plugin must be an object", 400)
    return {k: v for k, v in item.items() if k not in ("id", "status")}


@router.get("/gw/plugins", summary="Every message plugin with its status")
async def list_plugins(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    return result([_view(p) for p in ctx.plugins.all()])


@router.get("/gw/plugins/{selector}", summary="Plugins by id")
async def get_plugins(selector: str, auth: Auth = Depends(authenticate),
                      ctx: ApiContext = Depends(get_context)) -> Response:
    return result([_view(p) for p in _selected(ctx, selector)])


@router.post("/gw/plugins", summary=f"Create plugins (type: {', '.join(TYPES)})")
async def create_plugins(body: list[dict[str, Any]] = Body(..., max_length=100, examples=[EXAMPLE]),
                         auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    require_unlimited(auth)
    items = [_checked(i) for i in body]
    for n, item in enumerate(items):  # all or nothing: check every item before creating any
        try:
            compile_plugin(0, item)
        except PluginError as exc:
            raise ApiError(400, f"plugin {n}: {exc}", 400) from exc
    return result([_view(await ctx.plugins.create(item)) for item in items])


@router.put("/gw/plugins/{selector}", summary="Change fields of plugins")
async def update_plugins(selector: str, body: dict[str, Any] = Body(...), auth: Auth = Depends(authenticate),
                         ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    require_unlimited(auth)
    changes = _checked(body)
    out = []
    for plugin in _selected(ctx, selector):
        try:
            out.append(_view(await ctx.plugins.update(plugin.id, changes)))
        except PluginError as exc:
            raise ApiError(400, f"plugin {plugin.id}: {exc}", 400) from exc
    return result(out)


@router.delete("/gw/plugins/{selector}", summary="Delete plugins")
async def delete_plugins(selector: str, auth: Auth = Depends(authenticate),
                         ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    require_unlimited(auth)
    out = []
    for plugin in _selected(ctx, selector):
        await ctx.plugins.delete(plugin.id)
        out.append({"id": plugin.id})
    return result(out)
