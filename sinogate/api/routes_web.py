"""``/``: the web page (device list, telemetry, commands, live traffic) over the same API."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

_PAGE = files("sinogate.web").joinpath("index.html")


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    # The page holds no data; it asks for the API token and calls the API with it.
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"))
