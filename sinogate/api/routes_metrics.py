"""``GET /metrics``: Prometheus text format.

Protected by a token: ``metrics_token`` (for a scraper that should see nothing else) or the
master token, as ``Authorization: Bearer <token>`` (or ``FlespiToken``, or ``?token=``). For a
scraper that cannot send a token, ``metrics_port`` opens a separate listener without one (bind it
to a private address with ``metrics_host``).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, get_context
from sinogate.integrations.metrics import CONTENT_TYPE

router = APIRouter(tags=["server"])


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "flespitoken") and value.strip() else None
    return request.query_params.get("token") or None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


@router.get("/metrics", summary="Prometheus metrics (metrics token or master token)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request, ctx: ApiContext = Depends(get_context)) -> Response:
    token = _token(request)
    if token is None:
        raise ApiError(401, "authorization required: send 'Authorization: Bearer <metrics or master token>'", 401)
    allowed = [t for t in (ctx.metrics_token, ctx.master_token) if t]
    if not any(_same(token, t) for t in allowed):
        raise ApiError(401, "invalid token for /metrics", 401)
    if ctx.metrics is None:
        raise ApiError(503, "metrics are not available in this process", 503)
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
