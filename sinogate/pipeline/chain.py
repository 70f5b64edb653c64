"""The order of the phase-1 handlers, declared in one place.

Enrichment first (later handlers see device and reception fields), then the checks that flag a
message, then (later) filters and the analytics that keep per-device state. A handler named in
the server's ``handlers_disabled`` is simply absent from the chain.
"""

from __future__ import annotations

from sinogate.pipeline.base import Handler
from sinogate.pipeline.calcs import Calcs
from sinogate.pipeline.clock import Clock
from sinogate.pipeline.edges import StateEdges
from sinogate.pipeline.enrich import Enrich
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.geofencing import Geofencing
from sinogate.pipeline.odometer import Odometer
from sinogate.pipeline.overspeed import Overspeed
from sinogate.pipeline.plugins import Plugins
from sinogate.pipeline.presence import Presence
from sinogate.pipeline.time_sanity import TimeSanity

HANDLERS: tuple[type[Handler], ...] = (
    Enrich,
    TimeSanity,
    Clock,
    Plugins,
    Filters,
    Odometer,
    StateEdges,
    Geofencing,
    Overspeed,
    Calcs,
    Presence,
)

# Without these, messages would lack device and reception fields (enrich) or analytics would
# trust every fix (filters: the other handlers ask it what is live and accepted).
REQUIRED = frozenset({Enrich.name, Filters.name})
