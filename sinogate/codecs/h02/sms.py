"""H02: SMS forms of the commands, for a device that is not on line.

Sinotrack ST-90x SMS command set, reference ``h02.md`` §7; ``<password>`` is the device's SMS
password (default ``0000``). ``940``/``941`` (cut / restore oil) are the commonly cited codes but
unverified; the note says so.
"""

from __future__ import annotations

from typing import Any, Final

from sinogate.codecs.sinotrack import TEXT_COMMANDS
from sinogate.codecs.sms import CUSTOM_NOTE, custom_text
from sinogate.codecs.spec import SmsText


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


SMS_TEXTS: Final[dict[str, SmsText]] = {
    "custom": (custom_text, CUSTOM_NOTE),
    "interval.set": (_interval, "805<password> <seconds> (interval while ACC is on, 0..18000 s)."),
    "server.set": (_server, "804<password> <host> <port>."),
    "engine.stop": (lambda _p, pwd: f"940{pwd}", "940<password> (commonly cited, unverified)."),
    "engine.resume": (lambda _p, pwd: f"941{pwd}", "941<password> (commonly cited, unverified)."),
    "reboot": (lambda _p, _pwd: "RESTART", "RESTART."),
    "status.query": (lambda _p, _pwd: "CXZT", "CXZT (status text)."),
    "mileage.query": (lambda _p, pwd: f"143{pwd}", "143<password> (mileage query)."),
    **{name: (entry.build, entry.note) for name, entry in TEXT_COMMANDS.items()},
}
"""Command name → (builder(properties, password) -> text, note)."""

__all__ = ["SMS_TEXTS"]
