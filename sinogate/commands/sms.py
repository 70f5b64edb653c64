"""SMS texts for commands: what to send by phone when the device is not on line.

Sinotrack ST-90x SMS command set (reference h02.md §7); ``<pwd>`` is the device's SMS password
(device setting ``sms_password``, default ``0000``). ``940``/``941`` (cut / restore oil) are the
commonly cited codes but unverified here; the catalog says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEFAULT_PASSWORD = "0000"

SmsBuilder = Callable[[dict[str, Any], str], str]


def _custom(props: dict[str, Any], _pwd: str) -> str:
    text = props.get("payload", props.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise ValueError("custom: property 'payload' (or 'text') must be a non-empty string")
    return text.strip()


def _interval(props: dict[str, Any], pwd: str) -> str:
    seconds = props.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= 18000:
        raise ValueError("interval.set: seconds must be an integer 0..18000 for the SMS form")
    return f"805{pwd} {seconds}"


def _server(props: dict[str, Any], pwd: str) -> str:
    host, port = props.get("host"), props.get("port")
    if not isinstance(host, str) or not host or " " in host:
        raise ValueError("server.set: host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError("server.set: port must be an integer 1..65535")
    return f"804{props.get('password') or pwd} {host} {port}"


_H02: dict[str, tuple[SmsBuilder, str]] = {
    "custom": (_custom, "the payload is sent as the SMS text."),
    "interval.set": (_interval, "805<password> <seconds> (interval while ACC is on, 0..18000 s)."),
    "server.set": (_server, "804<password> <host> <port>."),
    "engine.stop": (lambda _p, pwd: f"940{pwd}", "940<password> (commonly cited, unverified)."),
    "engine.resume": (lambda _p, pwd: f"941{pwd}", "941<password> (commonly cited, unverified)."),
    "reboot": (lambda _p, _pwd: "RESTART", "RESTART."),
    "status.query": (lambda _p, _pwd: "CXZT", "CXZT (status text)."),
    "mileage.query": (lambda _p, pwd: f"143{pwd}", "143<password> (mileage query)."),
}

_JT808: dict[str, tuple[SmsBuilder, str]] = {
    "custom": (_custom, "the payload is sent as the SMS text."),
}

_TEXTS: dict[str, dict[str, tuple[SmsBuilder, str]]] = {"h02": _H02, "jt808": _JT808}


def supports(protocol: str, name: str) -> bool:
    return name in _TEXTS.get(protocol, {})


def note(protocol: str, name: str) -> str:
    entry = _TEXTS.get(protocol, {}).get(name)
    return entry[1] if entry else ""


def password_of(device: dict[str, Any]) -> str:
    pwd = (device.get("settings") or {}).get("sms_password")
    return pwd if isinstance(pwd, str) and pwd else DEFAULT_PASSWORD


def sms_text(protocol: str, name: str, properties: dict[str, Any], password: str = DEFAULT_PASSWORD) -> str:
    """The SMS text for a command; ``ValueError`` when there is none or the properties do not fit."""
    entry = _TEXTS.get(protocol, {}).get(name)
    if entry is None:
        raise ValueError(f"command {name!r} has no SMS form for protocol {protocol}")
    return entry[0](properties or {}, password)
