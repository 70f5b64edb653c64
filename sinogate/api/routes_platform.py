"""``/platform/tokens`` (master only) and ``/gw/message-parameters`` (the parameter registry)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, get_context, require_master, result
from sinogate.api.filter import wildcard_match
from sinogate.api.selectors import SelectorError
from sinogate.api.views import check_text

router = APIRouter()


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=256)
    devices: str | None = Field(None, max_length=4096, description="device selector the token is limited to")
    read_only: bool = False
    expire: float | None = Field(None, ge=0, le=1e11, description="absolute UNIX time the token stops working")
    ttl: float | None = Field(None, gt=0, le=1e10, description="seconds from now the token stops working")


@router.get("/platform/tokens", tags=["platform"], summary="Limited tokens (master only; keys are not shown)")
async def list_tokens(request: Request, auth: Auth = Depends(authenticate)) -> Response:
    require_master(auth)
    return result(await get_context(request).tokens.list())


@router.post("/platform/tokens", tags=["platform"], summary="Create limited tokens (master only)")
async def create_tokens(
    request: Request,
    body: Annotated[list[TokenCreate], Body(max_length=100)],
    auth: Auth = Depends(authenticate),
) -> Response:
    require_master(auth)
    out = []
    for item in body:
        check_text(item.model_dump(), "token")
        expire = item.expire
        if item.ttl is not None:
            expire = time.time() + item.ttl if expire is None else min(expire, time.time() + item.ttl)
        try:  # create() parses the selector before it stores anything
            token, record = await get_context(request).tokens.create(item.devices, item.read_only, expire, item.name)
        except SelectorError as exc:
            raise ApiError(400, f"bad devices selector: {exc}", 400) from exc
        out.append({**record, "key": token})
    return result(out)


@router.delete("/platform/tokens/{token_id}", tags=["platform"], summary="Delete a limited token by id")
async def delete_token(request: Request, token_id: str, auth: Auth = Depends(authenticate)) -> Response:
    require_master(auth)
    check_text(token_id, "token id")
    if not await get_context(request).tokens.delete(token_id):
        raise ApiError(404, f"token {token_id} not found", 404)
    return result([{"id": token_id}])


def _params(selector: str) -> list[dict[str, str]]:
    from sinogate.model.params import all_params

    patterns = None if selector.strip() in ("", "all") else [p.strip() for p in selector.split(",") if p.strip()]
    out = []
    for p in all_params():
        if patterns is None or any(wildcard_match(pat, p.name) for pat in patterns):
            out.append({"name": p.name, "type": p.type, "unit": p.unit, "description": p.meaning,
                        "packets": p.packets})
    return out


@router.get("/gw/message-parameters", tags=["server"], summary="Every message parameter sinogate emits")
async def message_parameters(
    auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result(_params("all"))


@router.get("/gw/message-parameters/{selector}", tags=["server"], summary="Parameters by name (wildcards * ?)")
async def message_parameters_by_name(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result(_params(selector))
