"""MQTT topic names, in flespi's layout under a configurable prefix (default ``flespi``, so
consumers written for flespi subscribe to sinogate unchanged).

    {prefix}/message/gw/devices/{device_id}                       every stored message
    {prefix}/message/gw/channels/{channel_id}/{ident}             the same, by channel and ident
    {prefix}/state/gw/devices/{id}/telemetry/{param}              retained, the latest value
    {prefix}/state/gw/devices/{id}/connected                      retained, true/false
    {prefix}/state/gw/devices/{id}/settings/{name}                retained, the confirmed value
    {prefix}/log/gw/devices/{id}/commands-queue/{name}/{status}   command lifecycle (with the reply)
    {prefix}/log/gw/devices/{id}/events/{type}                    analytics events
    {prefix}/interval/gw/calcs/{calc}/devices/{dev}/{action}      calculator intervals
    {prefix}/rest/post/gw/devices/{selector}/commands-queue       inbound: queue commands

sinogate adds, under the same prefix: ``{prefix}/state/gw/status`` (retained ``online``/``offline``,
the broker's last will) and ``{prefix}/state/gw/devices/{id}/location`` (retained, latitude and
longitude for Home Assistant's device tracker).
"""

from __future__ import annotations

from dataclasses import dataclass

INTERVAL_ACTIONS = frozenset({"created", "updated", "deleted"})


def clean(segment: object) -> str:
    """A topic level from any value: MQTT wildcards and separators cannot appear inside one."""
    text = str(segment)
    if not text:
        return "_"
    return text.replace("/", "_").replace("+", "_").replace("#", "_").replace("\0", "")


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "flespi"

    def device_message(self, device_id: int) -> str:
        return f"{self.prefix}/message/gw/devices/{device_id}"

    def channel_message(self, channel_id: int, ident: str) -> str:
        return f"{self.prefix}/message/gw/channels/{channel_id}/{clean(ident)}"

    def telemetry(self, device_id: int, param: str) -> str:
        return f"{self.prefix}/state/gw/devices/{device_id}/telemetry/{clean(param)}"

    def telemetry_all(self, device_id: int) -> str:
        return f"{self.prefix}/state/gw/devices/{device_id}/telemetry/+"

    def connected(self, device_id: int) -> str:
        return f"{self.prefix}/state/gw/devices/{device_id}/connected"

    def setting(self, device_id: int, name: str) -> str:
        return f"{self.prefix}/state/gw/devices/{device_id}/settings/{clean(name)}"

    def location(self, device_id: int) -> str:
        return f"{self.prefix}/state/gw/devices/{device_id}/location"

    def command_log(self, device_id: int, name: str, status: str) -> str:
        return f"{self.prefix}/log/gw/devices/{device_id}/commands-queue/{clean(name)}/{clean(status)}"

    def event(self, device_id: int, kind: str) -> str:
        return f"{self.prefix}/log/gw/devices/{device_id}/events/{clean(kind)}"

    def interval(self, calc_id: object, device_id: object, action: str) -> str:
        return f"{self.prefix}/interval/gw/calcs/{clean(calc_id)}/devices/{clean(device_id)}/{clean(action)}"

    def status(self) -> str:
        return f"{self.prefix}/state/gw/status"

    def commands_in(self, selector: str = "+") -> str:
        return f"{self.prefix}/rest/post/gw/devices/{selector}/commands-queue"

    def commands_in_selector(self, topic: str) -> str | None:
        """The device selector of an inbound commands topic, or ``None`` for another topic."""
        head = f"{self.prefix}/rest/post/gw/devices/"
        tail = "/commands-queue"
        if not topic.startswith(head) or not topic.endswith(tail):
            return None
        selector = topic[len(head):-len(tail)]
        return selector if selector and "/" not in selector else None
