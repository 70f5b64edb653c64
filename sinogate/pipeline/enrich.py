"""Adds what the server knows about a message: reception time, peer, channel and device."""

from __future__ import annotations

from sinogate.pipeline.base import Context, Handler, Message


class Enrich(Handler):
    """Reception fields (flespi's names): ``server.timestamp``, ``peer``, ``channel.id``,
    ``protocol.id``, ``protocol.name``, ``transport``, and for a known device ``device.id``,
    ``device.name``, ``device.type.id``; ``timestamp`` defaults to the reception time."""

    name = "enrich"

    def handle(self, message: Message, ctx: Context) -> Message:
        message["server.timestamp"] = ctx.now
        message["peer"] = ctx.peer
        message["channel.id"] = ctx.channel_id
        message["protocol.id"] = ctx.protocol_id
        message["protocol.name"] = ctx.protocol
        message["transport"] = ctx.transport
        if "timestamp" not in message:
            message["timestamp"] = ctx.now
        device = ctx.device
        if device is not None:
            message["device.id"] = device["id"]
            message["device.name"] = device["name"]
            message["device.type.id"] = 0
        return message
