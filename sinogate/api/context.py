"""What the API may use, handed over explicitly by the composition root (Starlette's
``app.state`` holds exactly one of these)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sinogate.analytics.calcs import CalcRegistry
from sinogate.analytics.geofences import GeofenceService
from sinogate.analytics.plugins import PluginSet
from sinogate.analytics.recalc import Recalculator
from sinogate.api.tokens import TokenService
from sinogate.commands.service import CommandService
from sinogate.commands.support import CommandSupport
from sinogate.ingest import IngestService
from sinogate.integrations.metrics import Metrics
from sinogate.integrations.notifications import NotificationService
from sinogate.interfaces import DeviceConnection
from sinogate.server.bus import EventBus
from sinogate.server.channels import Channel
from sinogate.server.devices import DeviceRegistry
from sinogate.server.guard import Guard
from sinogate.server.health import StoreHealth
from sinogate.server.registry import SessionRegistry
from sinogate.store.base import Store


@dataclass(slots=True)
class ApiContext:
    store: Store
    devices: DeviceRegistry
    sessions: SessionRegistry
    commands: CommandService
    ingest: IngestService
    bus: EventBus
    tokens: TokenService
    master_token: str
    channels: list[Channel]
    ports: dict[str, int]
    started: float
    is_stopping: Callable[[], bool]
    geofences: GeofenceService
    plugins: PluginSet
    heartbeat: float = 15.0  # seconds between SSE heartbeat comments
    max_body: int = 8 * 1024 * 1024  # bytes of a message upload (other routes: api.security.SMALL_BODY)
    token_recheck: float = 5.0  # seconds between re-checks of a live stream's token
    stop_minutes: float = 5.0  # default stop duration in track exports
    notifications: NotificationService | None = None
    metrics: Metrics | None = None
    calcs: CalcRegistry | None = None  # None: the calcs handler is disabled
    recalc: Recalculator | None = None
    metrics_token: str | None = None  # besides the master token, the one token GET /metrics accepts
    extra: dict[str, object] = field(default_factory=dict)
    support: CommandSupport | None = None  # command knowledge learned from traffic
    guard: Guard | None = None  # device-side limits (refused idents are listed from it)
    health: StoreHealth | None = None  # the store's state: writes answered 503 while it is degraded
    scan_max: int = 500_000  # messages one query may read (config api_scan_max)
    scan_seconds: float = 20.0  # filter evaluation time one query may take (config api_scan_seconds)
    devices_page: int = 1000  # devices per page of GET /gw/devices (config api_devices_page)
    # Several nodes: told the path of every successful change made through the API, so the other
    # nodes reload what they cache; and what /health shows of the cluster.
    on_change: Callable[[str], None] | None = None
    cluster: Callable[[], dict[str, Any]] | None = None

    @property
    def stopping(self) -> bool:
        """True once shutdown began: long-lived responses (streams) end."""
        return self.is_stopping()

    def session_for(self, device_id: int) -> DeviceConnection | None:
        return self.sessions.session_for(device_id)

    def channel(self, channel_id: int) -> Channel | None:
        return next((c for c in self.channels if c.id == channel_id), None)
