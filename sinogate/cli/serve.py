"""``sinogate serve``: run the gateway."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Path | None = typer.Option(None, "--config", "-c", help="TOML config file"),
        data_dir: Path | None = typer.Option(None, help="Data directory (default ./data)"),
        host: str | None = typer.Option(None, help="Address for device listeners"),
        h02_port: int | None = typer.Option(None, help="H02 TCP+UDP port (default 5013, 0 disables)"),
        jt808_port: int | None = typer.Option(None, help="JT/T 808 TCP+UDP port (default 5015, 0 disables)"),
        http_port: int | None = typer.Option(None, help="HTTP API port (default 8080, 0 disables)"),
        http_host: str | None = typer.Option(None, help="Address for the HTTP API"),
        udp: bool | None = typer.Option(None, "--udp/--no-udp", help="Listen on UDP too"),
        auto_register: bool | None = typer.Option(None, "--auto-register/--no-auto-register"),
        idle_timeout: float | None = typer.Option(None, help="Seconds before a silent connection is closed"),
        token: str | None = typer.Option(None, help="Master API token"),
        log_level: str | None = typer.Option(None, help="DEBUG, INFO, WARNING"),
        mqtt_url: str | None = typer.Option(None, help="MQTT broker, mqtt://user:pass@host:1883/ (mqtts:// for TLS)"),
        mqtt_prefix: str | None = typer.Option(None, help="MQTT topic prefix (default flespi)"),
        mqtt_commands: bool | None = typer.Option(None, "--mqtt-commands/--no-mqtt-commands",
                                                  help="Queue commands published over MQTT"),
        mqtt_homeassistant: bool | None = typer.Option(None, "--mqtt-homeassistant/--no-mqtt-homeassistant",
                                                       help="Home Assistant MQTT discovery"),
        metrics_port: int | None = typer.Option(None, help="Separate /metrics listener without token (0: off)"),
        metrics_host: str | None = typer.Option(None, help="Address of the separate /metrics listener"),
        store: str | None = typer.Option(None, "--store", help="Store URL: sqlite:///path or postgresql://user@host/db"),
        cluster: str | None = typer.Option(None, "--cluster", help="NATS URL (nats://host:4222) shared by several "
                                                                    "nodes on one PostgreSQL store"),
        node_name: str | None = typer.Option(None, help="This node's name in a cluster (unique per node)"),
    ) -> None:
        """Run the gateway: device listeners, storage and the HTTP API."""
        from sinogate.config import ConfigError, load_config
        from sinogate.runtime import Runtime
        from sinogate.store.base import StoreError

        try:
            cfg = load_config(
                config, data_dir=data_dir, host=host, h02_port=h02_port, jt808_port=jt808_port,
                http_port=http_port, http_host=http_host, udp=udp, auto_register=auto_register,
                idle_timeout=idle_timeout, token=token, log_level=log_level,
                mqtt_url=mqtt_url, mqtt_prefix=mqtt_prefix, mqtt_commands=mqtt_commands,
                mqtt_homeassistant=mqtt_homeassistant, metrics_port=metrics_port, metrics_host=metrics_host,
                store_url=store, cluster_url=cluster, node_name=node_name,
            )
        except Exception as exc:
            typer.echo(f"configuration error: {exc}", err=True)
            raise typer.Exit(2) from exc
        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        try:
            import uvloop

            runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
        except ImportError:
            runner = asyncio.run
        try:
            runner(Runtime(cfg).serve_forever())
        except (ConfigError, StoreError) as exc:  # a bad listener, an unreadable database
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except OSError as exc:  # a port in use, a data dir we cannot write: say so, no traceback
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
