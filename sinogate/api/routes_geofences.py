"""``/gw/geofences``: geofence CRUD (circle, polygon, corridor), in flespi's shapes.

Selectors: ``all``, ids ``1,2``, field matches ``name=depot*`` (``id``, ``name``, ``type`` or
``geometry.type``, ``devices``, ``speed_limit``; comma-separated parts are AND-ed) and
expressions in braces ``{name=='depot*' || speed_limit<50}``. Every token may read; writing needs
a token that is neither read-only nor limited to some devices.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sinogate.analytics.geofences import MAX_EXTENT_KM, MAX_NAME, MAX_POINTS, GeofenceError, GeofenceService
from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, authenticate, get_context, require_write, result
from sinogate.api.filter import Filter, FilterSyntaxError, wildcard_match
from sinogate.api.selectors import MAX_SELECTOR
from sinogate.api.views import check_text

router = APIRouter(tags=["geofences"])


# --- models (OpenAPI; the service checks everything again, with the reasons) -------------------

class LatLon(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, description="latitude, degrees (WGS 84)")
    lon: float = Field(ge=-180, le=180, description="longitude, degrees (WGS 84)")


class Circle(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["circle"]
    center: LatLon
    radius: float = Field(gt=0, le=MAX_EXTENT_KM, description="km")


class Polygon(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["polygon"]
    path: list[LatLon] = Field(min_length=3, max_length=MAX_POINTS + 1,
                               description="3 or more points; the polygon closes itself (a repeated "
                                           "first point is accepted); it must not cross itself")


class Corridor(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["corridor"]
    path: list[LatLon] = Field(min_length=2, max_length=MAX_POINTS, description="2 or more points")
    width: float = Field(gt=0, le=MAX_EXTENT_KM, description="km, the full width (half on each side of the path)")


Geometry = Annotated[Circle | Polygon | Corridor, Field(discriminator="type")]
DEVICES_DOC = "device selector the fence applies to: all (default), 1,2, name=truck*, {expression}"
SPEED_DOC = "km/h; while inside, the speed limit is the lower of this and the device's speed_limit setting"


class GeofenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    geometry: Geometry
    speed_limit: float | None = Field(None, gt=0, description=SPEED_DOC)
    devices: str = Field("all", min_length=1, max_length=MAX_SELECTOR, description=DEVICES_DOC)


class GeofenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    geometry: Geometry | None = None
    speed_limit: float | None = Field(None, gt=0, description=SPEED_DOC + "; null removes it")
    devices: str | None = Field(None, min_length=1, max_length=MAX_SELECTOR, description=DEVICES_DOC)


class Geofence(GeofenceCreate):
    id: int


class GeofencesResult(BaseModel):
    result: list[Geofence]


class Deleted(BaseModel):
    id: int


class DeletedResult(BaseModel):
    result: list[Deleted]


DOCUMENTED: dict[int | str, dict[str, Any]] = {200: {"model": GeofencesResult, "description": "the geofences"}}


# --- selectors -----------------------------------------------------------------------------------

_FIELDS = {"id": "id", "name": "name", "type": "geometry.type", "geometry.type": "geometry.type",
           "devices": "devices", "speed_limit": "speed_limit"}


def _flat(fence: dict[str, Any]) -> dict[str, Any]:
    return {"id": fence["id"], "name": fence["name"], "geometry.type": fence["geometry"]["type"],
            "type": fence["geometry"]["type"], "devices": fence.get("devices", "all"),
            "speed_limit": fence.get("speed_limit")}


def _value_matches(actual: Any, wanted: str) -> bool:
    if actual is None:
        return wanted.lower() == "null"
    if isinstance(actual, float) and actual.is_integer():
        actual = int(actual)
    return wildcard_match(wanted, str(actual))


def select(service: GeofenceService, selector: str) -> list[dict[str, Any]]:
    """The geofences a selector names, in id order; 404 for a listed id that does not exist."""
    text = selector.strip()
    if not text:
        raise ApiError(400, "empty selector", 400)
    if len(text) > MAX_SELECTOR:
        raise ApiError(400, f"selector longer than {MAX_SELECTOR} characters", 400)
    if text == "all":
        return service.all()
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ApiError(400, "an expression selector must end with '}'", 400)
        try:
            expression = Filter(text[1:-1])
        except FilterSyntaxError as exc:
            raise ApiError(400, f"bad selector expression: {exc}", 400) from exc
        return [f for f in service.all() if expression.matches(_flat(f))]
    parts = [p.strip() for p in text.split(",")]
    if all(p.isascii() and p.isdigit() for p in parts):
        out = []
        for fence_id in dict.fromkeys(int(p) for p in parts):
            fence = service.get(fence_id)
            if fence is None:
                raise ApiError(404, f"geofence {fence_id} not found", 404)
            out.append(fence)
        return out
    conditions = []
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq:
            raise ApiError(400, f"bad selector part {part!r}: expected 'all', an id list or field=value", 400)
        if name not in _FIELDS:
            raise ApiError(400, f"unknown selector field {name!r}; known: {', '.join(sorted(_FIELDS))}", 400)
        conditions.append((name, value.strip()))
    return [f for f in service.all()
            if all(_value_matches(_flat(f)[name], wanted) for name, wanted in conditions)]


def _require_write(auth: Auth) -> None:
    require_write(auth)
    if auth.limited:
        raise ApiError(403, "a token limited to some devices cannot change geofences", 403)


def _bad(exc: GeofenceError) -> ApiError:
    return ApiError(400, str(exc), 400)


# --- routes --------------------------------------------------------------------------------------

@router.get("/gw/geofences", summary="List every geofence", responses=DOCUMENTED)
async def list_geofences(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    return result(ctx.geofences.all())


@router.get("/gw/geofences/{selector}", summary="Get geofences: all | 1,2 | name=depot* | {expression}",
            responses=DOCUMENTED)
async def get_geofences(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result(select(ctx.geofences, selector))


@router.post("/gw/geofences", summary="Create geofences (the body is a JSON array; all or none are created)",
             responses=DOCUMENTED)
async def create_geofences(
    body: Annotated[list[GeofenceCreate], Body(max_length=1000)],
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    _require_write(auth)
    items = [item.model_dump(exclude_none=True) for item in body]
    check_text(items, "geofence")
    try:
        return result(await ctx.geofences.create(items))
    except GeofenceError as exc:
        raise _bad(exc) from exc


@router.put("/gw/geofences/{selector}", summary="Update fields of geofences (geometry is replaced whole)",
            responses=DOCUMENTED)
async def put_geofences(
    selector: str,
    body: GeofenceUpdate,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    _require_write(auth)
    changes = body.model_dump(exclude_unset=True)
    for key in ("name", "geometry", "devices"):
        if key in changes and changes[key] is None:
            raise ApiError(400, f"{key} cannot be null", 400)
    check_text(changes, "geofence")
    out = []
    for fence in select(ctx.geofences, selector):
        try:
            out.append(await ctx.geofences.update(fence["id"], changes))
        except GeofenceError as exc:
            raise _bad(exc) from exc
    return result(out)


@router.delete("/gw/geofences/{selector}", summary="Delete geofences",
               responses={200: {"model": DeletedResult, "description": "the deleted ids"}})
async def delete_geofences(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    _require_write(auth)
    out = []
    for fence in select(ctx.geofences, selector):
        await ctx.geofences.delete(fence["id"])
        out.append({"id": fence["id"]})
    return result(out)
