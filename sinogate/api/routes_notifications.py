"""``/gw/notifications``: notification rules, their delivery log and dead letters.

Selectors: ``all``, ids ``1,2``, ``name=<pattern>``. Rules see every device, so tokens limited
to some devices get 403 here; writes need a token that is not read-only. Webhook secrets are
shown as ``********``; sending that mask back in a ``PUT`` keeps the stored secret.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, get_context, require_unlimited, require_write, result
from sinogate.integrations.notifications import NotificationService, RuleError

router = APIRouter(tags=["notifications"])

RULE_DOC = (
    'A rule, or a list of rules: {"name", "events": ["alarm", "geofence.*", "device.unknown", ...], '
    '"devices": "<device selector>" (default "all"), "filter"?: "<expression over the event>", "enabled"?: true, '
    '"targets": [{"type": "webhook", "url", "headers"?, "secret"?, "timeout"?} | '
    '{"type": "apprise", "url", "template"?, "title"?} | {"type": "mqtt", "topic"}]}'
)
RULE_EXAMPLE = {
    "name": "SOS to Node-RED", "events": ["alarm"], "devices": "all",
    "targets": [{"type": "webhook", "url": "http://127.0.0.1:1880/sinogate", "secret": "change-me"}],
}


def _service(ctx: ApiContext) -> NotificationService:
    if ctx.notifications is None:
        raise ApiError(503, "notifications are not available in this process", 503)
    return ctx.notifications


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except RuleError as exc:
        raise ApiError(400, str(exc), 400) from exc
    except LookupError as exc:
        raise ApiError(404, str(exc.args[0]) if exc.args else "not found", 404) from exc


async def _acall(fn: Any, *args: Any) -> Any:
    try:
        return await fn(*args)
    except RuleError as exc:
        raise ApiError(400, str(exc), 400) from exc
    except LookupError as exc:
        raise ApiError(404, str(exc.args[0]) if exc.args else "not found", 404) from exc


@router.get("/gw/notifications", summary="Every notification rule")
async def list_rules(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    return result(_service(ctx).rules())


@router.get("/gw/notifications/{selector}", summary="Notification rules by selector (all, ids, name=pattern)")
async def get_rules(selector: str, auth: Auth = Depends(authenticate),
                    ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    return result(_call(_service(ctx).find, selector))


@router.post("/gw/notifications", summary="Create notification rules")
async def create_rules(
    body: Any = Body(..., description=RULE_DOC, examples=[[RULE_EXAMPLE]]),
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    require_unlimited(auth)
    require_write(auth)
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > 100:
        raise ApiError(400, "send one rule or a list of 1 to 100 rules", 400)
    return result(await _acall(_service(ctx).create, items))


@router.put("/gw/notifications/{selector}", summary="Change notification rules (the fields given)")
async def update_rules(
    selector: str,
    body: Any = Body(..., description="The fields to change, e.g. {\"enabled\": false}", examples=[{"enabled": False}]),
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    require_unlimited(auth)
    require_write(auth)
    return result(await _acall(_service(ctx).update, selector, body))


@router.delete("/gw/notifications/{selector}", summary="Delete notification rules")
async def delete_rules(selector: str, auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    require_write(auth)
    return result(await _acall(_service(ctx).delete, selector))


@router.get("/gw/notifications/{selector}/deliveries",
            summary="Recent deliveries of these rules (status, attempts, error), oldest first")
async def deliveries(selector: str, auth: Auth = Depends(authenticate),
                     ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    return result(_call(_service(ctx).deliveries, selector))


@router.get("/gw/notifications/{selector}/dead-letters",
            summary="Deliveries that failed after every retry (all: also those of deleted rules)")
async def dead_letters(selector: str, auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    return result(_call(_service(ctx).dead_letters, selector))


@router.delete("/gw/notifications/{selector}/dead-letters", summary="Forget dead letters")
async def clear_dead_letters(selector: str, auth: Auth = Depends(authenticate),
                             ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    require_write(auth)
    return result(await _acall(_service(ctx).clear_dead_letters, selector))


@router.post("/gw/notifications/{selector}/dead-letters/retry",
             summary="Deliver dead letters again (to their rule's current target)")
async def retry_dead_letters(selector: str, auth: Auth = Depends(authenticate),
                             ctx: ApiContext = Depends(get_context)) -> Response:
    require_unlimited(auth)
    require_write(auth)
    return result(await _acall(_service(ctx).retry_dead_letters, selector))
