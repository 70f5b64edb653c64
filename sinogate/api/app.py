"""The HTTP API application: flespi-shaped REST routes, the live stream and track exports.

``create_app(context)`` builds a FastAPI app over an ``ApiContext`` (the services the API may
use, built by the composition root). The route modules are listed in ``ROUTERS``: a module that
fails to import fails the start instead of silently missing routes.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi

from sinogate import __version__
from sinogate.api import (
    errors,
    routes_analytics,
    routes_calcs,
    routes_channels,
    routes_commands,
    routes_devices,
    routes_export,
    routes_geofences,
    routes_metrics,
    routes_notifications,
    routes_platform,
    routes_plugins,
    routes_reports,
    routes_stream,
    routes_support,
    routes_web,
)
from sinogate.api.context import ApiContext
from sinogate.api.deps import JsonResponse
from sinogate.api.security import Hardening

ROUTERS: tuple[APIRouter, ...] = (
    routes_devices.router,
    routes_analytics.router,
    routes_calcs.router,
    routes_reports.router,
    routes_channels.router,
    routes_commands.router,
    routes_support.router,
    routes_stream.router,
    routes_export.router,
    routes_geofences.router,
    routes_notifications.router,
    routes_metrics.router,
    routes_platform.router,
    routes_plugins.router,
    routes_web.router,
)

DESCRIPTION = """\
REST API in the shape of flespi's gateway API: existing flespi client code works by changing the
base URL. Send `Authorization: FlespiToken <token>` (or `Bearer <token>`) with every request except
`GET /health`. Results come as `{"result": [...]}`, errors as `{"errors": [{"code", "reason"}]}`.
Time-series routes take one `data=` JSON parameter: `from`, `to`, `count`, `reverse`, `fields`,
`filter`.
"""
def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {})["securitySchemes"] = {
        "FlespiToken": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`FlespiToken <token>` or `Bearer <token>`",
        }
    }
    schema["security"] = [{"FlespiToken": []}]
    for path, item in schema.get("paths", {}).items():
        if path == "/health":
            for op in item.values():
                if isinstance(op, dict):
                    op["security"] = []
    app.openapi_schema = schema
    return schema


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="sinogate",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # routes_web serves /docs from the vendored Swagger UI (works offline)
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = context
    errors.install(app, JsonResponse)
    app.add_middleware(Hardening, max_body=context.max_body, health=context.health)
    if context.on_change is not None:
        changed = context.on_change

        @app.middleware("http")
        async def tell_other_nodes(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            if request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400:
                changed(request.url.path)
            return response

    @app.get("/health", tags=["server"], summary="Liveness check (no token needed); status degraded says why")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            **(context.health.status() if context.health is not None else {}),
            "version": __version__,
            "uptime": round(time.time() - context.started, 3),
            "ports": dict(context.ports),
            **({"cluster": context.cluster()} if context.cluster is not None else {}),
        }

    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
