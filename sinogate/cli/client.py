"""What every client command (``token``, ``command``, ``commands``, ``console``, ``export``, ``import``)
shares: finding the server, finding the token, one-line errors.

The server is found the same way every time:

1. ``--url``;
2. the ``SINOGATE_URL`` variable;
3. the config file's ``http_host``/``http_port`` (``--config``, else ``SINOGATE_CONFIG``, else
   ``./sinogate.toml`` when it exists; ``SINOGATE_HTTP_PORT``/``SINOGATE_HTTP_HOST`` count too);
4. ``http://127.0.0.1:8080``.

The token: ``--token``, then ``SINOGATE_TOKEN``, then the config's ``token``, then the ``token`` file in
the data directory (``--data-dir``, else the config's ``data_dir``). Nothing here opens or creates a
database: client commands go through the API.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8080"
CONFIG_FILE = "sinogate.toml"

T = TypeVar("T")


class ClientError(Exception):
    """A problem a client command reports as one line (exit status 1)."""


def config_path(config: Path | None) -> Path | None:
    """The config file a client reads: ``--config``, ``SINOGATE_CONFIG``, else ``./sinogate.toml``."""
    if config is not None:
        return config
    env = os.environ.get("SINOGATE_CONFIG")
    if env:
        return Path(env)
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def load(config: Path | None) -> Any:
    """The server's config as the server would read it (file, then ``SINOGATE_*``); ``ClientError``."""
    from sinogate.config import load_config

    path = config_path(config)
    try:
        return load_config(path)
    except FileNotFoundError as exc:
        raise ClientError(f"config file {path} not found") from exc
    except Exception as exc:  # TOML syntax, validation: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClientError(f"config {path or '(environment)'}: {first}") from exc


def server_url(url: str | None, config: Path | None = None) -> str:
    """Where the API is (see the module docstring for the order)."""
    if url:
        return url.rstrip("/")
    env = os.environ.get("SINOGATE_URL")
    if env:
        return env.rstrip("/")
    cfg = load(config)
    if not cfg.http_port:
        raise ClientError("the server's config disables the HTTP API (http_port = 0): pass --url")
    host = cfg.http_host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.http_port}"


def find_token(token: str | None, data_dir: Path | None = None, config: Path | None = None) -> str:
    """The API token to use (see the module docstring); never generates one."""
    if token:
        return token
    env = os.environ.get("SINOGATE_TOKEN")
    if env:
        return env
    cfg = load(config)
    if cfg.token:
        return str(cfg.token)
    path = Path(data_dir or cfg.data_dir) / "token"
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if not text:
        raise ClientError(f"no API token: pass --token, set SINOGATE_TOKEN, or point --data-dir at the server's "
                          f"data directory (no token in {path})")
    return text


def reason_of(resp: httpx.Response) -> str:
    """The API's error reasons as one line."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200].strip()}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(f"{e.get('reason')} (code {e.get('code')})" for e in errors)
    return f"HTTP {resp.status_code}"


def unreachable(url: str, exc: Exception) -> ClientError:
    return ClientError(f"cannot reach the sinogate API at {url} ({type(exc).__name__}: {exc or 'no answer'}); "
                       f"is the server running? Pass --url or set SINOGATE_URL")


def normalize(device: dict[str, Any]) -> dict[str, Any]:
    """The API's device view keeps the ident under ``configuration``; lift it up."""
    conf = device.get("configuration") or {}
    return {**device, "ident": device.get("ident", conf.get("ident")), "phone": device.get("phone", conf.get("phone"))}


class Api:
    """A small synchronous API client."""

    def __init__(self, url: str, token: str, timeout: float = 75.0) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"FlespiToken {token}"},
                                   timeout=timeout)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc

    def ok(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        resp = self.call(method, path, **kwargs)
        if resp.status_code != 200:
            raise ClientError(reason_of(resp))
        try:
            return list(resp.json().get("result", []))
        except ValueError as exc:
            raise ClientError(f"{self.url}{path} did not answer with JSON: is this a sinogate server?") from exc

    def device(self, selector: str) -> dict[str, Any]:
        """A device by ident (tried first) or id."""
        resp = self.call("GET", f"/gw/devices/configuration.ident={selector}")
        if resp.status_code == 401:
            raise ClientError(reason_of(resp))
        if resp.status_code == 200 and resp.json().get("result"):
            return normalize(resp.json()["result"][0])
        if selector.isdigit():
            resp = self.call("GET", f"/gw/devices/{selector}")
            if resp.status_code == 200 and resp.json().get("result"):
                return normalize(resp.json()["result"][0])
        raise ClientError(f"no device with ident or id {selector!r}")

    def close(self) -> None:
        self.client.close()


def connect(url: str | None, token: str | None, data_dir: Path | None = None, config: Path | None = None) -> Api:
    return Api(server_url(url, config), find_token(token, data_dir, config))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turns the errors a client meets into ``error: <one line>`` and exit status 1."""
    try:
        yield
    except ClientError as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
    except json.JSONDecodeError as exc:
        fail(f"not JSON: {exc}")


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of ``one_line_errors``."""
    import functools

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> T:
        with one_line_errors():
            return fn(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def terminal_width(default: int = 120) -> int:
    """The terminal's width (``COLUMNS`` wins); ``default`` when output is not a terminal."""
    import shutil

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((default, 24)).columns
    return default


# Options every client command takes (typer reads these at registration).
def url_option() -> Any:
    return typer.Option(None, "--url", help="API base URL (default: SINOGATE_URL, else the config's http settings, "
                                           "else http://127.0.0.1:8080)")


def token_option() -> Any:
    return typer.Option(None, "--token", help="API token (default: SINOGATE_TOKEN, the config's token, "
                                             "else <data-dir>/token)")


def config_option() -> Any:
    return typer.Option(None, "--config", "-c", help="The server's TOML config (default: SINOGATE_CONFIG, "
                                                     "else ./sinogate.toml)")


def data_dir_option(help_text: str = "The server's data directory, to read its token file") -> Any:
    return typer.Option(None, "--data-dir", help=help_text)


__all__ = [
    "DEFAULT_URL", "Api", "ClientError", "config_option", "config_path", "connect", "data_dir_option", "fail",
    "find_token", "guarded", "load", "normalize", "one_line_errors", "reason_of", "server_url", "terminal_width",
    "token_option", "unreachable", "url_option",
]
