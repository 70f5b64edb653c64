"""Server configuration: defaults, then a TOML file, then ``SINOGATE_*`` variables, then flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """A configuration the server cannot run with; the message says which setting and why."""


class ListenerConfig(BaseModel):
    """One channel: a protocol on a port (TCP, and UDP unless ``udp`` is false)."""

    model_config = ConfigDict(extra="forbid")

    protocol: str = Field(description="Protocol name (h02, jt808)")
    port: int = Field(ge=0, le=65535, description="TCP (+UDP) port; 0 picks a free one")
    id: int | None = Field(None, ge=1, description="Channel id (default: its position in the list, from 1)")
    name: str | None = Field(None, description="Channel name (default: the protocol)")
    host: str | None = Field(None, description="Bind address (default: host)")
    udp: bool | None = Field(None, description="Also listen on UDP (default: udp)")
    auto_register: bool | None = Field(None, description="Create devices for new idents (default: auto_register)")
    follow_ident: bool = Field(False, description="A frame naming another ident on an identified connection: "
                                                  "follow it (true) instead of refusing it (false)")
    register_per_connection: int | None = Field(None, ge=0, description="New devices one connection may register "
                                                                        "(default: register_per_connection)")


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINOGATE_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Where the SQLite file and the generated token live")
    host: str = Field("0.0.0.0", description="Address the device listeners bind to")
    h02_port: int = Field(5013, ge=0, le=65535, description="H02 TCP+UDP port (0 disables)")
    jt808_port: int = Field(5015, ge=0, le=65535, description="JT/T 808 TCP+UDP port (0 disables)")
    udp: bool = Field(True, description="Also listen on UDP on the device ports")
    listeners: list[ListenerConfig] | None = Field(
        None, description="Channels, several per protocol allowed; when unset, h02_port and jt808_port"
    )
    store_url: str | None = Field(
        None, description="Where data lives: sqlite:///path/file.sqlite (default data_dir/sinogate.sqlite)"
    )
    cluster_url: str | None = Field(
        None, description="NATS server with JetStream (nats://host:4222) shared by several nodes on one PostgreSQL "
                          "store; unset: a single node"
    )
    cluster_name: str = Field("sinogate", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                              description="Name of the cluster: its NATS buckets and subjects start with it, so "
                                          "several clusters can share one NATS server")
    node_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                  description="This node's name in a cluster (default: host name, HTTP port and "
                                              "process id); unique per running node")
    cluster_replicas: int = Field(1, ge=1, le=5, description="Replicas of the cluster's NATS buckets when a node "
                                                             "creates them (3 on a NATS cluster of three servers)")
    cluster_heartbeat: float = Field(5.0, gt=0, le=60, description="How often a node says it is alive (s); it is "
                                                                   "taken for dead after three missed beats")
    state_flush_seconds: float = Field(10.0, gt=0, description="How often analytics (handler) state is written back "
                                                               "(s): what a crash may lose of it")
    handlers: dict[str, Any] = Field(
        default_factory=dict, description="Server defaults of pipeline handler options, e.g. time_max_ahead"
    )
    handlers_disabled: list[str] = Field(default_factory=list, description="Pipeline handlers to leave out")
    http_host: str = Field("0.0.0.0", description="Address the HTTP API binds to")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP API port (0 disables)")
    http_max_body: int = Field(8 * 1024 * 1024, ge=1024, description="Largest message upload (bytes); 413 above")
    token: str | None = Field(None, description="Master API token; generated and stored when unset")
    auto_register: bool = Field(True, description="Create a device for every new ident")
    idle_timeout: float = Field(600.0, gt=0, description="Close a device connection silent this long (s)")
    garbage_limit: int = Field(8192, gt=0, description="Close a connection after this many bytes without a frame "
                                                       "within garbage_window (valid frames do not reset it)")
    # Device-side limits (hardening; see sinogate/server/guard.py and the README's Limits table).
    garbage_window: float = Field(60.0, gt=0, description="Seconds over which garbage_limit counts junk bytes")
    max_connections: int = Field(10_000, ge=1, description="Open TCP device connections in total (also capped "
                                                           "by the descriptor limit minus fd_headroom)")
    max_connections_per_peer: int = Field(1000, ge=1, description="TCP connections (and UDP peers) per peer address")
    fd_headroom: int = Field(256, ge=16, description="Descriptors kept free for the API, the store and the log")
    unidentified_timeout: float = Field(60.0, gt=0, description="Close a connection that named no device this long (s)")
    junk_sample: int = Field(4096, ge=0, description="Raw bytes kept per connection of traffic without a valid "
                                                     "frame (and before the device is known)")
    junk_budget: int = Field(16 * 1024 * 1024, ge=0, description="Raw junk bytes kept per day, all connections")
    register_rate: float = Field(600.0, ge=0, description="New devices auto-registered per minute (token bucket)")
    register_burst: int = Field(1000, ge=0, description="New devices auto-registered at once (bucket size)")
    register_per_connection: int = Field(1, ge=0, description="New devices one connection may register")
    ident_max_length: int = Field(32, ge=8, le=128, description="Longest device ident (characters)")
    log_line_max: int = Field(512, ge=80, description="Longest log line caused by device traffic (characters)")
    log_rate: float = Field(20.0, gt=0, description="Log lines caused by device traffic per second (burst 100)")
    warnings_per_connection: int = Field(3, ge=0, description="Frame warnings logged per connection; the rest "
                                                              "are counted in one line when it ends")
    jt808_reassembly_bytes: int = Field(256 * 1024, ge=4096, description="Bytes of split JT/T 808 messages held "
                                                                         "per connection")
    jt808_reassembly_total: int = Field(32 * 1024 * 1024, ge=4096, description="Bytes of split JT/T 808 messages "
                                                                               "held by all connections")
    jt808_reassembly_age: float = Field(120.0, gt=0, description="Seconds an incomplete split message is kept")
    api_scan_max: int = Field(500_000, ge=1000, description="Messages one query may read (filtered scans, queries "
                                                            "without count); 400 above: narrow the range")
    api_scan_seconds: float = Field(20.0, gt=0, description="Filter evaluation time one query may take (s); 400 "
                                                            "above: narrow the range")
    api_devices_page: int = Field(1000, ge=1, description="Devices per page of GET /gw/devices (limit, offset)")
    sqlite_wal_limit: int = Field(64 * 1024 * 1024, ge=1024 * 1024, description="SQLite WAL size kept after a "
                                                                                 "checkpoint; a larger WAL is "
                                                                                 "checkpointed even under load")
    disk_resume_free: int = Field(16 * 1024 * 1024, ge=0, description="Free bytes on the data disk before a store "
                                                                      "that ran out of space is used again")
    messages_ttl_days: float | None = Field(None, description="Delete messages older than this (None keeps all)")
    packets_ttl_days: float | None = Field(30.0, description="Delete raw packets and logs older than this")
    sqlite_synchronous: str = Field("NORMAL", description="SQLite synchronous pragma: NORMAL or FULL")
    log_level: str = Field("INFO")
    engine_stop_max_speed: float = Field(20.0, ge=0, description="engine.stop waits while the device reports a "
                                                                 "higher speed (km/h) unless forced")
    # Integrations (MQTT bridge, notifications, metrics): see sinogate/integrations/.
    mqtt_url: str | None = Field(None, description="MQTT broker: mqtt://user:pass@host:1883/ or mqtts://; unset: off")
    mqtt_prefix: str = Field("flespi", description="Topic prefix (flespi's layout under it)")
    mqtt_commands: bool = Field(False, description="Queue commands published to {prefix}/rest/post/gw/devices/"
                                                   "{id}/commands-queue")
    mqtt_homeassistant: bool = Field(False, description="Publish Home Assistant MQTT discovery configs")
    mqtt_homeassistant_prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")
    mqtt_qos: int = Field(1, ge=0, le=2, description="QoS of every publish")
    mqtt_client_id: str | None = Field(None, description="MQTT client id (default sinogate-<host name>)")
    mqtt_keepalive: int = Field(60, ge=5, le=65535, description="MQTT keepalive (s)")
    mqtt_ca_file: Path | None = Field(None, description="CA certificates (PEM) to verify an mqtts:// broker "
                                                         "(default: the system's)")
    mqtt_queue: int = Field(10000, ge=10, description="Batches waiting for the broker before new ones are dropped")
    notify_timeout: float = Field(10.0, gt=0, description="Webhook/Apprise request timeout (s)")
    notify_retries: int = Field(5, ge=0, le=20, description="Retries of a failed delivery before dead-lettering")
    notify_backoff: float = Field(2.0, gt=0, description="First retry delay (s), doubled on each retry")
    notify_queue: int = Field(1000, ge=1, description="Deliveries waiting per target before new ones are dropped")
    metrics_token: str | None = Field(None, description="Token for GET /metrics (the master token works too)")
    metrics_host: str = Field("127.0.0.1", description="Bind address of the separate metrics listener")
    metrics_port: int = Field(0, ge=0, le=65535, description="Separate /metrics listener without token (0: off)")
    map_tiles_url: str = Field(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Web map tile URL ({z}/{x}/{y}); empty: no tiles, markers and tracks on a blank background",
    )
    map_tiles_attribution: str | None = Field(None, description="Attribution shown on the map (default: OSM's)")

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None and not (
            value.startswith(("sqlite:///", "postgresql://", "postgres://")) or value == "memory://"
        ):
            raise ValueError("must be sqlite:///path, postgresql://user@host/db or memory://")
        return value

    @field_validator("cluster_url")
    @classmethod
    def _cluster_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("nats://", "tls://")):
            raise ValueError("must be nats://host:4222 (or tls://host:4222)")
        return value

    def store_location(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'sinogate.sqlite'}"

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync(cls, value: str) -> str:
        if value.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be OFF, NORMAL, FULL or EXTRA")
        return value.upper()


def load_config(path: Path | None = None, **overrides: Any) -> Config:
    """Builds the config; ``overrides`` (command-line flags) win over env and file."""
    file_values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        file_values = raw.get("sinogate", raw)
    env_values = Config().model_dump(exclude_unset=True)
    merged = {**file_values, **env_values, **{k: v for k, v in overrides.items() if v is not None}}
    return Config(**merged)
