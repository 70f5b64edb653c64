"""A computed odometer per device from accepted fixes, apart from the device's ``vehicle.mileage``.

Adds ``odometer.step`` (km from the previous accepted fix) to accepted fixes and
``odometer.computed`` (km, the running total) to every live message of a known device. The total
is the device's state; ``PUT /gw/devices/{sel}/odometer`` sets it (to match a dashboard).
"""

from __future__ import annotations

from sinogate.analytics.geo import distance_km
from sinogate.pipeline.base import Context, Handler, Message


class Odometer(Handler):
    name = "odometer"

    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if scratch.get("late") or scratch.get("flagged"):  # not live
            return message
        state = ctx.state(self.name)
        if state is None:
            return message
        km = float(state.get("km", 0.0))
        if scratch.get("fix"):  # accepted
            lat, lon = message["position.latitude"], message["position.longitude"]
            previous = state.get("fix")
            if previous:
                known = scratch.get("step")  # the filters measured from the same fix: their distance
                if known is not None and known[0] == previous[0] and known[1] == previous[1]:
                    step = known[2]
                else:
                    step = distance_km(previous[0], previous[1], lat, lon)
            else:
                step = 0.0
            km += step
            state["fix"] = [lat, lon]
            state["km"] = km
            message["odometer.step"] = round(step, 4)
        message["odometer.computed"] = round(km, 3)
        return message


def set_odometer(states: dict[str, object], km: float) -> None:
    """Sets a device's total (the accumulator), keeping its last fix."""
    state = states.setdefault(Odometer.name, {})
    assert isinstance(state, dict)
    state["km"] = float(km)
