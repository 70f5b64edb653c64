"""The HTTP API application: flespi-shaped REST routes, the live stream and track exports.

``create_app(gateway)`` builds a FastAPI app bound to a running ``Gateway``. Every module
``sinogate/api/routes_*.py`` that exposes ``router`` is included, so a new group of routes plugs
in without touching this file.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sinogate import __version__
from sinogate.api.deps import ApiError, JsonResponse, error_body
from sinogate.api.tokens import TokenService, master_token

if TYPE_CHECKING:
    from sinogate.server.gateway import Gateway

log = logging.getLogger("sinogate.api")

DESCRIPTION = """\
REST API in the shape of flespi's gateway API: existing flespi client code works by changing the
base URL. Send `Authorization: FlespiToken <token>` (or `Bearer <token>`) with every request except
`GET /health`. Results come as `{"result": [...]}`, errors as `{"errors": [{"code", "reason"}]}`.
Time-series routes take one `data=` JSON parameter: `from`, `to`, `count`, `reverse`, `fields`,
`filter`.
"""


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        msg = err.get("msg", "invalid")
        parts.append(f"{loc}: {msg}" if loc else str(msg))
    return "; ".join(parts) or "invalid request"


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return JsonResponse(error_body(exc.reason, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return JsonResponse(error_body(_validation_reason(exc), 400), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        reason = exc.detail if isinstance(exc.detail, str) else "request failed"
        return JsonResponse(error_body(reason, exc.status_code), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JsonResponse(error_body(f"internal error: {type(exc).__name__}", 500), status_code=500)


def _include_routers(app: FastAPI) -> list[str]:
    import sinogate.api as package

    loaded = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("routes_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except Exception:
            log.exception("cannot load API routes from %s; skipping them", info.name)
            continue
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
            loaded.append(info.name)
    return loaded


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


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="sinogate",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    app.state.master_token = master_token(gateway.config.token, gateway.config.data_dir)
    app.state.tokens = TokenService(gateway.store)
    app.state.heartbeat = 15.0  # seconds between SSE heartbeat comments
    app.state.stop_minutes = 5.0  # default stop duration in track exports
    _install_handlers(app)

    @app.get("/health", tags=["server"], summary="Liveness check (no token needed)")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime": round(time.time() - gateway.started, 3),
            "ports": dict(gateway.ports),
        }

    app.state.route_modules = _include_routers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
