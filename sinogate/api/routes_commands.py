"""Commands, the command queue and results, settings (device shadow) and SMS texts.

flespi shape: ``POST /gw/devices/{sel}/commands`` (real-time, waits for the reply),
``POST /gw/devices/{sel}/commands-queue`` (persistent queue), ``GET``/``DELETE``
``/commands-queue/{id|all}``, ``GET /commands-result[?data=]`` and ``/commands-result/{id|all}``,
``GET``/``PUT``/``DELETE /settings/{name}``, ``GET /sms?name=&properties=``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import (
    ApiError,
    Auth,
    authenticate,
    get_context,
    parse_data,
    require_write,
    resolve_devices,
    result,
)
from sinogate.api.errors import as_api_error
from sinogate.api.views import apply_query
from sinogate.commands import catalog, sms
from sinogate.commands.catalog import CommandError
from sinogate.commands.service import ACTIVE, FINAL, CommandFailed, CommandService

log = logging.getLogger("sinogate.api")
router = APIRouter(tags=["commands"])

TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 5.0, 60.0, 15.0


def _service(ctx: ApiContext) -> CommandService:
    return ctx.commands


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", 400) from exc


async def _items(request: Request) -> list[dict[str, Any]]:
    body = await _json_body(request)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not body or not all(isinstance(i, dict) for i in body):
        raise ApiError(400, "body must be a non-empty JSON array of command objects", 400)
    for item in body:
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ApiError(400, "every command needs a 'name'", 400)
        if item.get("properties") is not None and not isinstance(item["properties"], dict):
            raise ApiError(400, f"command {item['name']!r}: 'properties' must be an object", 400)
        for flag in ("confirm", "force"):
            if item.get(flag) is not None and not isinstance(item[flag], bool):
                raise ApiError(400, f"command {item['name']!r}: {flag!r} must be true or false", 400)
    return body


def _precheck(devices: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Every (device, command) pair is valid before anything is sent: one bad command, no side effects."""
    for device in devices:
        for item in items:
            try:
                props = catalog.check(device["protocol"], item["name"], item.get("properties"))
                catalog.check_confirmed(device["protocol"], item["name"], props, item.get("confirm"))
            except CommandError as exc:
                raise ApiError(400, f"device {device['id']}: {exc.reason}", 400) from exc


def _command_ids(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise ApiError(400, f"bad command selector {text!r}: use 'all' or ids like 1,2,3", 400) from exc


def _failure(exc: BaseException, device: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(exc, Exception):
        raise exc
    if not isinstance(exc, CommandFailed | CommandError):
        log.error("command %s for device %s failed", name, device["id"], exc_info=exc)
    err = as_api_error(exc)
    error: dict[str, Any] = {"code": err.code, "reason": err.reason, "device_id": device["id"], "name": name}
    if isinstance(exc, CommandFailed) and exc.command is not None:
        error["command"] = exc.command
    return error


@router.post("/gw/devices/{selector}/commands", summary="Send commands and wait for the replies (real-time)")
async def send_commands(selector: str, request: Request, auth: Auth = Depends(authenticate),
                        ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    service = _service(ctx)
    items = await _items(request)
    devices = resolve_devices(ctx, selector, auth)
    for item in items:
        timeout = item.get("timeout", TIMEOUT_DEFAULT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not \
                TIMEOUT_MIN <= timeout <= TIMEOUT_MAX:
            raise ApiError(400, f"'timeout' must be between {TIMEOUT_MIN:g} and {TIMEOUT_MAX:g} seconds", 400)
    _precheck(devices, items)
    jobs = [(device, item) for device in devices for item in items]
    outcomes = await asyncio.gather(
        *(service.send_realtime(d, i["name"], i.get("properties"), float(i.get("timeout", TIMEOUT_DEFAULT)),
                                confirm=i.get("confirm") is True, force=i.get("force") is True)
          for d, i in jobs),
        return_exceptions=True,
    )
    done: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for (device, item), outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            errors.append(_failure(outcome, device, item["name"]))
        else:
            done.append(outcome)
    status = 400 if errors and not done else 200
    return result(done, status=status, errors=errors or None)


@router.get("/gw/devices/{selector}/commands", summary="The commands each device supports (catalog)")
async def list_commands(selector: str, auth: Auth = Depends(authenticate),
                        ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    return result([{"device_id": d["id"], "ident": d["ident"], "protocol": d["protocol"],
                    "commands": catalog.catalog_for(d["protocol"])} for d in devices])


@router.post("/gw/devices/{selector}/commands-queue", summary="Queue commands (written now or on next connection)")
async def queue_commands(selector: str, request: Request, auth: Auth = Depends(authenticate),
                         ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    service = _service(ctx)
    items = await _items(request)
    devices = resolve_devices(ctx, selector, auth)
    _precheck(devices, items)
    out = []
    for device in devices:
        for item in items:
            out.append(await service.enqueue(device, item["name"], item.get("properties"),
                                             ttl=item.get("ttl"), expire=item.get("expire"),
                                             confirm=item.get("confirm") is True, force=item.get("force") is True))
    return result(out)


@router.get("/gw/devices/{selector}/commands-queue", summary="Pending (queued or sent) commands")
async def get_queue(selector: str, auth: Auth = Depends(authenticate),
                    ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    return result(await _service(ctx).queue([d["id"] for d in devices]))


@router.get("/gw/devices/{selector}/commands-queue/{commands}", summary="Pending commands by id or all")
async def get_queue_items(selector: str, commands: str, auth: Auth = Depends(authenticate),
                          ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    return result(await _service(ctx).find([d["id"] for d in devices], _command_ids(commands), ACTIVE))


@router.delete("/gw/devices/{selector}/commands-queue/{commands}", summary="Cancel pending commands")
async def delete_queue_items(selector: str, commands: str, auth: Auth = Depends(authenticate),
                             ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    service = _service(ctx)
    devices = resolve_devices(ctx, selector, auth)
    pending = await service.find([d["id"] for d in devices], _command_ids(commands), ACTIVE)
    out = []
    for cmd in pending:
        canceled = await service.cancel(cmd["id"])
        if canceled is not None:
            out.append(canceled)
    return result(out)


@router.get("/gw/devices/{selector}/commands-result", summary="Finished commands (processed, canceled, expired)")
async def get_results(selector: str, data: str | None = Query(None), auth: Auth = Depends(authenticate),
                      ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    query = parse_data(data)
    items = await _service(ctx).results([d["id"] for d in devices], query.time_query())
    return result(apply_query(items, query))


@router.get("/gw/devices/{selector}/commands-result/{commands}", summary="Finished commands by id or all")
async def get_result_items(selector: str, commands: str, auth: Auth = Depends(authenticate),
                           ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    return result(await _service(ctx).find([d["id"] for d in devices], _command_ids(commands), FINAL))


# --- settings (device shadow) -------------------------------------------------------------------

async def _setting_op(ctx: ApiContext, devices: list[dict[str, Any]], op: str, name: str | None,
                      body: dict[str, Any] | None = None) -> Response:
    shadow = _service(ctx).settings
    out: list[dict[str, Any]] = []
    for device in devices:
        if name is None:
            out.extend(await shadow.list(device))
        elif op == "get":
            out.append(await shadow.get(device, name))
        elif op == "put":
            out.append(await shadow.put(device, name, body or {}))
        else:
            out.append(await shadow.delete(device, name))
    return result(out)


@router.get("/gw/devices/{selector}/settings", summary="Every setting of the devices")
async def list_settings(selector: str, auth: Auth = Depends(authenticate),
                        ctx: ApiContext = Depends(get_context)) -> Response:
    return await _setting_op(ctx, resolve_devices(ctx, selector, auth), "get", None)


@router.get("/gw/devices/{selector}/settings/{name}", summary="A setting: current and pending value")
async def get_setting(selector: str, name: str, auth: Auth = Depends(authenticate),
                      ctx: ApiContext = Depends(get_context)) -> Response:
    return await _setting_op(ctx, resolve_devices(ctx, selector, auth), "get", name)


@router.put("/gw/devices/{selector}/settings/{name}", summary="Change a setting (queues the set command)")
async def put_setting(selector: str, name: str, request: Request, auth: Auth = Depends(authenticate),
                      ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    body = await _json_body(request)
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be an object like {"properties": {"seconds": 30}}', 400)
    address = body.get("address", "connection")
    if address != "connection":
        raise ApiError(400, "only address 'connection' is supported; use GET /sms for the SMS text", 400)
    return await _setting_op(ctx, resolve_devices(ctx, selector, auth), "put", name, body)


@router.delete("/gw/devices/{selector}/settings/{name}", summary="Forget a setting and cancel a pending change")
async def delete_setting(selector: str, name: str, auth: Auth = Depends(authenticate),
                         ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    return await _setting_op(ctx, resolve_devices(ctx, selector, auth), "delete", name)


# --- SMS ------------------------------------------------------------------------------------------

@router.get("/gw/devices/{selector}/sms", summary="The SMS text of a command, with the device's SMS password")
async def sms_preview(selector: str, name: str = Query(...), properties: str | None = Query(None),
                      auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    props: Any = {}
    if properties:
        try:
            props = json.loads(properties)
        except ValueError as exc:
            raise ApiError(400, f"properties is not valid JSON: {exc}", 400) from exc
        if not isinstance(props, dict):
            raise ApiError(400, "properties must be a JSON object", 400)
    out = []
    for device in resolve_devices(ctx, selector, auth):
        protocol = device["protocol"]
        if not sms.supports(protocol, name):
            raise ApiError(400, f"command {name!r} has no SMS form for protocol {protocol}", 400)
        try:
            text = sms.sms_text(protocol, name, props, sms.password_of(device))
        except ValueError as exc:
            raise ApiError(400, str(exc), 400) from exc
        out.append({"device_id": device["id"], "ident": device["ident"], "phone": device.get("phone"),
                    "name": name, "properties": props, "text": text, "note": sms.note(protocol, name)})
    return result(out)
