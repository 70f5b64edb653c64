"""Where a notification goes: a webhook, an Apprise URL or an MQTT topic.

Each sender does one attempt and raises ``DeliveryError`` (``retry`` says whether another attempt
can help); retries, backoff and dead-lettering are the notification service's.

Webhooks are ``POST``ed the event JSON (``sinogate.jsonenc``) with ``Content-Type:
application/json``, ``X-Sinogate-Event`` (the event type), ``X-Sinogate-Delivery`` (a delivery id,
the same on every retry) and, with a ``secret``, ``X-Sinogate-Signature: sha256=<hex>``: the
HMAC-SHA256 of the exact body with the secret as key (verify it before trusting the body).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import apprise
import httpx

from sinogate import __version__

SIGNATURE_HEADER = "X-Sinogate-Signature"
DEFAULT_TEMPLATE = "{device.name}: {type} {alarm} {geofence.name} at {position.latitude},{position.longitude}"
DEFAULT_TITLE = "sinogate: {type}"
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z0-9_.\-]+)\}")


class DeliveryError(Exception):
    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def render(template: str, values: Mapping[str, Any]) -> str:
    """``{name}`` → the value of the flat key ``name`` (``{device.name}``, ``{position.latitude}``);
    a key the event lacks becomes empty, ``{{``/``}}`` are literal braces. Runs of spaces left by
    missing keys are collapsed, and a dangling `` at ,`` (no position) is dropped."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = values.get(match.group(1))
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    text = _PLACEHOLDER.sub(one, template)
    text = re.sub(r"\s+at\s*,\s*$", "", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


class MqttPort(Protocol):
    async def deliver(self, topic: str, payload: bytes) -> None: ...


class Senders:
    """One attempt at a delivery, per target type. Holds the HTTP client (one connection pool)."""

    def __init__(self, timeout: float, mqtt: MqttPort | None = None) -> None:
        self.timeout = timeout
        self.mqtt = mqtt
        self._http: httpx.AsyncClient | None = None
        self._pool: ThreadPoolExecutor | None = None  # Apprise's blocking notifiers, apart from the default executor

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(headers={"User-Agent": f"sinogate/{__version__}"}, follow_redirects=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def send(self, target: Mapping[str, Any], body: bytes, event: Mapping[str, Any], delivery_id: str) -> str:
        """Delivers once; returns a short description of the answer, raises ``DeliveryError``."""
        kind = target["type"]
        if kind == "webhook":
            return await self.webhook(target, body, event, delivery_id)
        if kind == "apprise":
            return await self.apprise(target, event)
        if kind == "mqtt":
            return await self.mqtt_publish(target, body)
        raise DeliveryError(f"unknown target type {kind!r}", retry=False)

    async def webhook(self, target: Mapping[str, Any], body: bytes, event: Mapping[str, Any], delivery_id: str) -> str:
        headers = {str(k): str(v) for k, v in (target.get("headers") or {}).items()}
        headers.update({"Content-Type": "application/json", "X-Sinogate-Event": str(event.get("type")),
                        "X-Sinogate-Delivery": delivery_id})
        if target.get("secret"):
            headers[SIGNATURE_HEADER] = sign(str(target["secret"]), body)
        timeout = float(target.get("timeout") or self.timeout)
        try:
            response = await self._client().post(str(target["url"]), content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out after {timeout:g} s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        # A request the receiver refuses stays refused; overload and server errors may pass later.
        retry = response.status_code in (408, 409, 425, 429) or response.status_code >= 500
        raise DeliveryError(f"HTTP {response.status_code}", retry=retry)

    async def apprise(self, target: Mapping[str, Any], event: Mapping[str, Any]) -> str:
        notifier = apprise.Apprise()
        if not notifier.add(str(target["url"])):
            raise DeliveryError("Apprise does not accept this URL", retry=False)
        body = render(str(target.get("template") or DEFAULT_TEMPLATE), event)
        title = render(str(target.get("title") or DEFAULT_TITLE), event)
        timeout = float(target.get("timeout") or self.timeout)
        # Apprise's notifiers are blocking (requests, smtplib): worker threads of our own keep the loop
        # and the default executor free, however slow the service.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="apprise")
        call = functools.partial(notifier.notify, body=body or str(event.get("type")), title=title, timeout=timeout)
        result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        if result:
            return "sent"
        problems = [entry.message for entry in result.logs() if getattr(entry, "level", "") in ("WARNING", "ERROR")]
        raise DeliveryError(problems[-1] if problems else "Apprise reported a failure")

    async def mqtt_publish(self, target: Mapping[str, Any], body: bytes) -> str:
        if self.mqtt is None:
            raise DeliveryError("MQTT is not configured (mqtt_url)", retry=False)
        try:
            await self.mqtt.deliver(str(target["topic"]), body)
        except (ConnectionError, OSError) as exc:
            raise DeliveryError(f"MQTT: {exc}") from exc
        return "published"


def valid_apprise_url(url: str) -> bool:
    return bool(apprise.Apprise().add(url))
