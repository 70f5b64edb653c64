"""Server configuration: defaults, then a TOML file, then ``SINOGATE_*`` variables, then flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINOGATE_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="Where the SQLite file and the generated token live")
    host: str = Field("0.0.0.0", description="Address the device listeners bind to")
    h02_port: int = Field(5013, ge=0, le=65535, description="H02 TCP+UDP port (0 disables)")
    jt808_port: int = Field(5015, ge=0, le=65535, description="JT/T 808 TCP+UDP port (0 disables)")
    udp: bool = Field(True, description="Also listen on UDP on the device ports")
    http_host: str = Field("0.0.0.0", description="Address the HTTP API binds to")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP API port (0 disables)")
    token: str | None = Field(None, description="Master API token; generated and stored when unset")
    auto_register: bool = Field(True, description="Create a device for every new ident")
    idle_timeout: float = Field(600.0, gt=0, description="Close a device connection silent this long (s)")
    garbage_limit: int = Field(8192, gt=0, description="Close a connection after this many bytes without a frame")
    messages_ttl_days: float | None = Field(None, description="Delete messages older than this (None keeps all)")
    packets_ttl_days: float | None = Field(30.0, description="Delete raw packets and logs older than this")
    sqlite_synchronous: str = Field("NORMAL", description="SQLite synchronous pragma: NORMAL or FULL")
    log_level: str = Field("INFO")

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
