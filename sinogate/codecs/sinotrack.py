"""Sinotrack settings that exist only as SMS texts (reference ``h02.md`` §7, "Sinotrack ST-90x SMS
command set"), shared by the protocols Sinotrack units speak.

H02 units accept the same texts over GPRS as bare ASCII (no ``*HQ`` framing) and answer with
``*HQ,<id>,SMS,<text>#``; units in JT/T 808 mode (ST-901L 4G) take them as a 0x8300 text message and
answer with a text report (reference ``jt808.md`` §4, 0x8300). So each entry here is both a typed
command (sent over the connection) and an SMS text. ``<pwd>`` is the device's SMS password (device
setting ``sms_password``, default ``0000``); a ``password`` property overrides it for one command.

Every builder checks its properties and returns the text; ``ValueError`` when they do not fit.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

_PASSWORD: Final[dict[str, Any]] = {
    "type": "string", "pattern": "^[0-9]{4,8}$", "default": "0000",
    "description": "SMS password (default: the device's sms_password setting, else 0000)",
}
_WORD = re.compile(r"^[!-~]{1,64}$")  # printable ASCII without spaces


@dataclass(frozen=True, slots=True)
class TextCommand:
    """A Sinotrack text command: JSON schema of its properties, the text builder, a catalog note.

    ``verified`` is False for codes cited by vendor documents that no field report confirms yet."""

    schema: dict[str, Any]
    build: Callable[[dict[str, Any], str], str]
    note: str
    verified: bool = True


def _pwd(props: dict[str, Any], default: str) -> str:
    pwd = props.get("password") or default
    if not isinstance(pwd, str) or not pwd.isascii() or not pwd.isdigit() or not 4 <= len(pwd) <= 8:
        raise ValueError("password must be 4-8 digits")
    return pwd


def _int(props: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = props.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{key} must be an integer {lo}..{hi}, got {value!r}")
    return value


def _word(props: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = props.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _WORD.match(value):
        raise ValueError(f"{key} must be 1-64 printable ASCII characters without spaces")
    return value


def _schema(description: str, properties: dict[str, Any] | None = None,
            required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": description,
        "properties": {**(properties or {}), "password": _PASSWORD},
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    return out


def _apn(props: dict[str, Any], pwd: str) -> str:
    apn = _word(props, "apn")
    user, secret = _word(props, "apn_user", False), _word(props, "apn_password", False)
    if (user is None) != (secret is None):
        raise ValueError("give both apn_user and apn_password, or neither")
    tail = f" {user} {secret}" if user is not None else ""
    return f"803{_pwd(props, pwd)} {apn}{tail}"


def _timezone(props: dict[str, Any], pwd: str) -> str:
    hours = _int(props, "hours", -12, 14)
    return f"896{_pwd(props, pwd)}{'W' if hours < 0 else 'E'}{abs(hours):02d}"


def _mode(props: dict[str, Any], pwd: str) -> str:
    mode = props.get("mode")
    if mode not in ("gprs", "sms"):
        raise ValueError(f"mode must be 'gprs' or 'sms', got {mode!r}")
    return f"{'710' if mode == 'gprs' else '700'}{_pwd(props, pwd)}"


def _interval(code: str) -> Callable[[dict[str, Any], str], str]:
    def build(props: dict[str, Any], pwd: str) -> str:
        return f"{code}{_pwd(props, pwd)} {_int(props, 'seconds', 0, 18000)}"

    return build


def _overspeed(props: dict[str, Any], pwd: str) -> str:
    return f"122{_pwd(props, pwd)} {_int(props, 'speed', 0, 300)}"


def _switch(on: str, off: str) -> Callable[[dict[str, Any], str], str]:
    def build(props: dict[str, Any], pwd: str) -> str:
        enabled = props.get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be true or false")
        return f"{on if enabled else off}{_pwd(props, pwd)}"

    return build


def _password(props: dict[str, Any], pwd: str) -> str:
    new = props.get("new_password")
    if not isinstance(new, str) or not re.fullmatch(r"[0-9]{4}", new):
        raise ValueError("new_password must be 4 digits")
    return f"777{new}{_pwd(props, pwd)}"


def _fixed(text: str) -> Callable[[dict[str, Any], str], str]:
    return lambda _props, _pwd: text


_SECONDS: Final = {"type": "integer", "minimum": 0, "maximum": 18000, "description": "Seconds (0 stops reports)"}

TEXT_COMMANDS: Final[dict[str, TextCommand]] = {
    "apn.set": TextCommand(
        _schema("Set the mobile operator's APN (text '803<password> <apn> [<user> <pass>]').",
                {"apn": {"type": "string", "minLength": 1, "maxLength": 64},
                 "apn_user": {"type": "string", "maxLength": 64},
                 "apn_password": {"type": "string", "maxLength": 64}}, ("apn",)),
        _apn, "803<password> <apn> [<user> <pass>]."),
    "timezone.set": TextCommand(
        _schema("Set the device's time zone (text '896<password>E<hh>' or 'W<hh>'; 0 = UTC, recommended).",
                {"hours": {"type": "integer", "minimum": -12, "maximum": 14, "description": "Hours east of UTC"}},
                ("hours",)),
        _timezone, "896<password>E<hh> (W<hh> west of UTC; E00 = UTC)."),
    "mode.set": TextCommand(
        _schema("Report over GPRS (text '710<password>') or by SMS only (text '700<password>': the unit stops "
                "reporting to any server).", {"mode": {"type": "string", "enum": ["gprs", "sms"]}}, ("mode",)),
        _mode, "710<password> GPRS mode, 700<password> SMS mode."),
    "interval.acc_on.set": TextCommand(
        _schema("Report interval while ACC is on (text '805<password> <seconds>'); the text form of "
                "interval.set, for firmware that ignores S71.", {"seconds": _SECONDS}, ("seconds",)),
        _interval("805"), "805<password> <seconds> (0..18000 s, 0 closes GPRS)."),
    "interval.acc_off.set": TextCommand(
        _schema("Report interval while ACC is off (text '809<password> <seconds>').", {"seconds": _SECONDS},
                ("seconds",)),
        _interval("809"), "809<password> <seconds>."),
    "overspeed.set": TextCommand(
        _schema("Overspeed alarm threshold (text '122<password> <km/h>'; 0 turns it off).",
                {"speed": {"type": "integer", "minimum": 0, "maximum": 300, "description": "km/h, 0 = off"}},
                ("speed",)),
        _overspeed, "122<password> <km/h> (0 = off)."),
    "power.alarm.set": TextCommand(
        _schema("Power-disconnect alarm on (text '011<password>') or off ('010<password>').",
                {"enabled": {"type": "boolean"}}, ("enabled",)),
        _switch("011", "010"), "011<password> on, 010<password> off."),
    "password.set": TextCommand(
        _schema("Change the SMS password (text '777<new><old>'); set the device's sms_password setting to "
                "the new one once the unit confirms.",
                {"new_password": {"type": "string", "pattern": "^[0-9]{4}$"}}, ("new_password",)),
        _password, "777<new password><old password>."),
    "config.query": TextCommand(
        _schema("Read the configuration (text 'RCONF'); the unit answers with an SMS text."), _fixed("RCONF"),
        "RCONF (configuration text)."),
    "status.text.query": TextCommand(
        _schema("Read the status text (text 'CXZT': model and firmware, server, intervals, voltage, GPS, GSM)."),
        _fixed("CXZT"), "CXZT (status text)."),
    "version.query": TextCommand(
        _schema("Read the firmware version (text 'VERSION')."), _fixed("VERSION"), "VERSION (firmware version).",
        verified=False),
    "factory.reset": TextCommand(
        _schema("Restore the factory settings (text 'FORMAT'): server, APN, intervals and password are lost."),
        _fixed("FORMAT"), "FORMAT (factory settings; vendor-cited, unverified).", verified=False),
}
"""Command name → text command (``server.set`` and ``reboot`` are each protocol's own commands)."""

EXAMPLES: Final[dict[str, tuple[dict[str, Any], ...]]] = {
    "apn.set": ({"apn": "internet"}, {"apn": "web.example", "apn_user": "user", "apn_password": "secret"}),
    "timezone.set": ({"hours": 0}, {"hours": -5}),
    "mode.set": ({"mode": "gprs"},),
    "interval.acc_on.set": ({"seconds": 30},),
    "interval.acc_off.set": ({"seconds": 600},),
    "overspeed.set": ({"speed": 120}, {"speed": 0}),
    "power.alarm.set": ({"enabled": True},),
    "password.set": ({"new_password": "1234"},),
}
"""Example properties of the text commands that take some, for the protocols' catalogs."""

def text_of(name: str, properties: dict[str, Any], password: str = "0000") -> str:
    """The text of a text command; ``ValueError`` when the properties do not fit."""
    entry = TEXT_COMMANDS.get(name)
    if entry is None:
        raise ValueError(f"{name!r} is not a Sinotrack text command")
    unknown = sorted(set(properties) - set(entry.schema["properties"]))
    if unknown:
        raise ValueError(f"{name}: unknown properties {', '.join(unknown)}")
    return entry.build(properties, password)


__all__ = ["EXAMPLES", "TEXT_COMMANDS", "TextCommand", "text_of"]
