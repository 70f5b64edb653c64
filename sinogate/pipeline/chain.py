"""The order of the phase-1 handlers, declared in one place.

Enrichment first (later handlers see device and reception fields), then the checks that flag a
message, then (later) filters and the analytics that keep per-device state. A handler named in
the server's ``handlers_disabled`` is simply absent from the chain.
"""

from __future__ import annotations

from sinogate.pipeline.base import Handler
from sinogate.pipeline.enrich import Enrich
from sinogate.pipeline.time_sanity import TimeSanity

HANDLERS: tuple[type[Handler], ...] = (
    Enrich,
    TimeSanity,
)

# Handlers without which messages would be stored without device or reception fields.
REQUIRED = frozenset({Enrich.name})
