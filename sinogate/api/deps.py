"""What every route module shares: errors, authentication, selectors, the ``data=`` query, the envelope.

Route modules are ``sinogate/api/routes_*.py`` exposing ``router`` (an ``APIRouter``), listed in
``app.ROUTERS``; routes raise (``ApiError`` or a domain error) and ``errors`` answers. A typical route::

    @router.get("/gw/devices/{selector}/things")
    async def things(selector: str, auth: Auth = Depends(authenticate),
                     ctx: ApiContext = Depends(get_context)) -> Response:
        devices = resolve_devices(ctx, selector, auth)
        ...
        return result([...])
"""

from __future__ import annotations

import hmac
import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.errors import ApiError, error_body
from sinogate.api.filter import Filter, FilterSyntaxError
from sinogate.api.selectors import Selector, SelectorError
from sinogate.codecs import PROTOCOLS
from sinogate.store.base import NotFound, TimeQuery

__all__ = ["ApiError", "error_body"]


# --- results ---------------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode


def dumps(value: Any) -> str:
    """Compact JSON; NaN/Infinity (never valid JSON) become null."""
    try:
        return _encode(value)
    except ValueError:
        return _encode(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def result(items: list[Any], status: int = 200, errors: list[dict[str, Any]] | None = None) -> Response:
    """The flespi envelope ``{"result": [...]}`` (plus ``errors`` for a partial success)."""
    body: dict[str, Any] = {"result": items}
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status_code=status)


def raw_result(json_items: list[str]) -> Response:
    """The envelope around items that already are JSON text (spliced, never parsed)."""
    body = '{"result":[' + ",".join(json_items) + "]}"
    return Response(body.encode("utf-8"), media_type="application/json")


# --- authentication --------------------------------------------------------------------------------

@dataclass
class Auth:
    token: str
    master: bool
    read_only: bool
    devices: str | None = None  # selector the token is limited to; None = every device
    _selector: Selector | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.devices is not None and self._selector is None:
            try:
                self._selector = Selector.parse(self.devices)
            except SelectorError:
                self._selector = Selector("", ids=())  # a broken limit sees nothing

    @property
    def limited(self) -> bool:
        return self.devices is not None

    def allows(self, device: dict[str, Any]) -> bool:
        return self._selector is None or self._selector.matches(device)


def get_context(request: Request) -> ApiContext:
    return request.app.state.context  # type: ignore[no-any-return]


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() in ("flespitoken", "bearer") and value.strip():
            return value.strip()
        return None
    # EventSource (browsers) cannot send headers: ?token= only on the live stream, so a token
    # never lands in access logs, histories or Referer headers for anything else.
    if request.method == "GET" and request.url.path.endswith("/stream"):
        return request.query_params.get("token") or None
    return None


async def authenticate(request: Request) -> Auth:
    """FastAPI dependency: 401 without a token or with an unknown or expired one."""
    token = _token_from(request)
    if token is None:
        raise ApiError(401, "authorization required: send 'Authorization: FlespiToken <token>'", 401)
    context: ApiContext = request.app.state.context
    master = context.master_token
    if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), master.encode()):
        return Auth(token=token, master=True, read_only=False, devices=None)
    record = await context.tokens.lookup(token)
    if record is None:
        raise ApiError(401, "invalid or expired token", 401)
    return Auth(token=token, master=False, read_only=bool(record.get("read_only")), devices=record.get("devices"))


def require_write(auth: Auth) -> None:
    if auth.read_only:
        raise ApiError(403, "this token is read-only", 403)


def require_master(auth: Auth) -> None:
    if not auth.master:
        raise ApiError(403, "this operation needs the master token", 403)


def require_unlimited(auth: Auth) -> None:
    """Channel-wide data shows every device: tokens limited to some devices may not read it."""
    if auth.limited:
        raise ApiError(403, "this token is limited to some devices and cannot access channels", 403)


# --- selectors -------------------------------------------------------------------------------------

def parse_selector(selector: str) -> Selector:
    try:
        return Selector.parse(selector)
    except SelectorError as exc:
        raise ApiError(400, str(exc), 400) from exc


def resolve_devices(ctx: ApiContext, selector: str, auth: Auth) -> list[dict[str, Any]]:
    """The registry devices a selector names, in id order.

    An explicit id list: 404 for an id that does not exist, 403 for one the token may not see.
    ``all`` and field/expression selectors silently leave out devices the token may not see.
    """
    sel = parse_selector(selector)
    if sel.ids is not None:
        out = []
        for device_id in sel.ids:
            device = _get(ctx, device_id)
            if device is None:
                raise ApiError(404, f"device {device_id} not found", 404)
            if not auth.allows(device):
                raise ApiError(403, f"access to device {device_id} is denied for this token", 403)
            out.append(device)
        return out
    ident = sel.exact_ident()
    if ident is not None:
        candidates = [d for p in PROTOCOLS if (d := ctx.devices.find(p, ident)) is not None]
    else:
        candidates = ctx.devices.all()
    if auth.limited:  # the token's own set first: a costly pattern only runs on what it may see
        candidates = [d for d in candidates if auth.allows(d)]
    devices = [d for d in candidates if sel.matches(d)]
    devices.sort(key=lambda d: d["id"])
    return devices


def _get(ctx: ApiContext, device_id: int) -> dict[str, Any] | None:
    try:
        return ctx.devices.get(device_id)
    except NotFound:
        return None


def resolve_one_device(ctx: ApiContext, selector: str, auth: Auth) -> dict[str, Any]:
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        raise ApiError(404, f"no device matches {selector!r}", 404)
    if len(devices) > 1:
        raise ApiError(400, f"selector {selector!r} matches {len(devices)} devices; this route takes one", 400)
    return devices[0]


# --- the data= query -------------------------------------------------------------------------------

DATA_KEYS = ("from", "to", "count", "reverse", "fields", "filter")
MAX_COUNT = 10_000_000
DATA_DOC = (
    'JSON object: {"from": unix, "to": unix, "count": int, "reverse": bool, '
    '"fields": "a,b" | ["a","b"], "filter": "position.speed>60 && $engine.ignition.status==true"}'
)
DataParam = Annotated[str | None, Query(description=DATA_DOC, max_length=8192)]


@dataclass
class DataQuery:
    from_ts: float | None = None
    to_ts: float | None = None
    count: int | None = None
    reverse: bool = False
    fields: list[str] | None = None
    filter: Filter | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a route allowed beyond DATA_KEYS

    def time_query(self, with_count: bool = True) -> TimeQuery:
        return TimeQuery(self.from_ts, self.to_ts, self.count if with_count else None, self.reverse)

    def project(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            return item
        return {k: item[k] for k in self.fields if k in item}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"data.{name} must be a number (UNIX seconds)", 400)
    if not math.isfinite(value):
        raise ApiError(400, f"data.{name} must be finite", 400)
    return float(value)


def parse_data(data: str | None, allowed_extra: tuple[str, ...] = ()) -> DataQuery:
    """Parses the ``data=`` JSON object of a time-series route; 400 with the reason when wrong."""
    query = DataQuery()
    if data is None or data.strip() == "":
        return query
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"data is not valid JSON: {exc}", 400) from exc
    if not isinstance(obj, dict):
        raise ApiError(400, "data must be a JSON object", 400)
    unknown = [k for k in obj if k not in DATA_KEYS and k not in allowed_extra]
    if unknown:
        known = ", ".join((*DATA_KEYS, *allowed_extra))
        raise ApiError(400, f"unknown data key(s) {', '.join(map(repr, unknown))}; known: {known}", 400)
    if obj.get("from") is not None:
        query.from_ts = _number("from", obj["from"])
    if obj.get("to") is not None:
        query.to_ts = _number("to", obj["to"])
    if query.from_ts is not None and query.to_ts is not None and query.from_ts > query.to_ts:
        raise ApiError(400, "data.from is after data.to", 400)
    if obj.get("count") is not None:
        count = obj["count"]
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or count > MAX_COUNT:
            raise ApiError(400, f"data.count must be an integer between 0 and {MAX_COUNT}", 400)
        query.count = count
    if obj.get("reverse") is not None:
        if not isinstance(obj["reverse"], bool):
            raise ApiError(400, "data.reverse must be true or false", 400)
        query.reverse = obj["reverse"]
    fields = obj.get("fields")
    if fields is not None:
        if isinstance(fields, str):
            names = [f.strip() for f in fields.split(",")]
        elif isinstance(fields, list) and all(isinstance(f, str) for f in fields):
            names = [f.strip() for f in fields]
        else:
            raise ApiError(400, "data.fields must be a comma-separated string or a list of strings", 400)
        names = [n for n in names if n]
        if not names:
            raise ApiError(400, "data.fields names no field", 400)
        query.fields = list(dict.fromkeys(names))
    if obj.get("filter") is not None:
        if not isinstance(obj["filter"], str):
            raise ApiError(400, "data.filter must be a string expression", 400)
        try:
            query.filter = Filter(obj["filter"])
        except FilterSyntaxError as exc:
            raise ApiError(400, f"bad data.filter: {exc}", 400) from exc
    query.extra = {k: obj[k] for k in allowed_extra if k in obj}
    return query
