"""``sinogate simulate``: many simulated H02 / JT/T 808 trackers against a server."""

from __future__ import annotations

import asyncio
import signal
from enum import StrEnum

import typer
from rich.console import Console
from rich.live import Live

from sinogate.simulate.config import DEFAULT_PORTS, SimConfig, Summary


class ProtocolChoice(StrEnum):
    h02 = "h02"
    jt808 = "jt808"
    mixed = "mixed"


def parse_target(target: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[v6]:PORT`` → (host, port or None)."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if target.count(":") == 1:
        host, port = target.split(":")
        return host or "127.0.0.1", int(port)
    return target, None


def _run(cfg: SimConfig, progress: bool, use_uvloop: bool) -> Summary:
    from sinogate.simulate.device import Stats
    from sinogate.simulate.display import ProgressView
    from sinogate.simulate.runner import Runner

    stats = Stats()

    async def main() -> Summary:
        runner = Runner(cfg, stats)
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, runner.stop)
        except (NotImplementedError, RuntimeError):
            pass
        return await runner.run()

    def go() -> Summary:
        if use_uvloop:
            try:
                import uvloop

                return uvloop.run(main())
            except ImportError:
                pass
        return asyncio.run(main())

    if not progress:
        return go()
    view = ProgressView(stats, f"sinogate simulate · {cfg.protocol} · {cfg.devices} devices × {cfg.rate:g}/s")
    with Live(get_renderable=view, refresh_per_second=4, transient=False):
        return go()


def _spread(text: str) -> list[tuple[int, int]]:
    """``--spread``: ``H02PORT:JT808PORT,...`` as port pairs (``BadParameter`` otherwise)."""
    pairs = []
    for pair in text.split(","):
        h02, _, jt808 = pair.partition(":")
        if not (h02.isdecimal() and jt808.isdecimal() and 0 < int(h02) < 65536 and 0 < int(jt808) < 65536):
            raise typer.BadParameter("--spread takes H02PORT:JT808PORT pairs separated by commas, "
                                     "e.g. 5013:5015,6013:6015")
        pairs.append((int(h02), int(jt808)))
    return pairs


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        target: str = typer.Option("127.0.0.1", help="HOST[:PORT] of the server (port defaults by protocol)."),
        protocol: ProtocolChoice = typer.Option(ProtocolChoice.h02, help="h02, jt808, or mixed (half each)."),
        devices: int = typer.Option(10, "--devices", "-n", min=1, help="Number of simulated devices."),
        rate: float = typer.Option(1.0, min=0.0001, help="Position messages per second per device."),
        duration: float = typer.Option(10.0, min=0, help="Seconds of sending (0 = until Ctrl-C)."),
        binary_share: float = typer.Option(0.0, min=0, max=1, help="H02: share of positions as '$' frames."),
        binary_long_share: float = typer.Option(
            0.5, min=0, max=1, help="H02: share of devices whose '$' frames are 45 bytes (else 32)."
        ),
        jt808_2019_share: float = typer.Option(0.0, min=0, max=1, help="JT808: share of 2019-header devices."),
        jt808_batch: int = typer.Option(0, min=0, help="JT808: positions per 0x0704 batch (0 = 0x0200 each)."),
        seed: int = typer.Option(1, help="Seed for idents, routes and choices."),
        ident_offset: int = typer.Option(0, min=0, help="Shift idents so two runs use disjoint devices."),
        h02_port: int | None = typer.Option(None, help=f"H02 port (default {DEFAULT_PORTS['h02']})."),
        jt808_port: int | None = typer.Option(None, help=f"JT808 port (default {DEFAULT_PORTS['jt808']})."),
        spread: str | None = typer.Option(None, help="H02PORT:JT808PORT,... of several servers on the target host "
                                                     "(nodes of a cluster): devices take them in turn."),
        connect_concurrency: int = typer.Option(200, min=1, help="Connections being opened at once."),
        reconnect_storm: float | None = typer.Option(
            None, help="Seconds into the run when every device drops and reconnects at once."
        ),
        storm_offline: float = typer.Option(2.0, min=0, help="Seconds offline during the storm (positions buffer)."),
        heartbeat: float = typer.Option(60.0, min=0, help="Heartbeat after this many idle seconds (0 = never)."),
        alarm_rate: float = typer.Option(0.002, min=0, max=1, help="Chance of an SOS/power-cut alarm per position."),
        drain_timeout: float = typer.Option(3.0, min=0, help="Seconds to wait for outstanding acks at the end."),
        out: str | None = typer.Option(None, "--summary", "--out", help="Write the JSON summary to this file "
                                                                        "(none unless asked)."),
        no_sent_list: bool = typer.Option(False, help="Leave the per-message (timestamp, seq) lists out."),
        handshake: bool = typer.Option(
            True, help="JT808: wait for the register/auth answers (--no-handshake for a byte-counting sink)."
        ),
        progress: bool = typer.Option(True, help="Live progress display."),
        uvloop: bool = typer.Option(True, help="Use uvloop when installed."),
    ) -> None:
        """Simulate N trackers: JT808 register/auth, positions on plausible routes, acks, command answers."""
        host, port = parse_target(target)
        proto = protocol.value
        if port is not None and proto == "mixed" and (h02_port is None or jt808_port is None):
            raise typer.BadParameter("with --protocol mixed give --h02-port and --jt808-port, not a target port")
        if port is not None and proto != "mixed":
            if proto == "h02":
                h02_port = port
            else:
                jt808_port = port
        cfg = SimConfig(
            host=host,
            spread=_spread(spread) if spread else [],
            h02_port=h02_port or DEFAULT_PORTS["h02"],
            jt808_port=jt808_port or DEFAULT_PORTS["jt808"],
            protocol=proto,  # type: ignore[arg-type]
            devices=devices,
            rate=rate,
            duration=duration,
            binary_share=binary_share,
            binary_long_share=binary_long_share,
            jt808_2019_share=jt808_2019_share,
            jt808_batch=jt808_batch,
            seed=seed,
            ident_offset=ident_offset,
            connect_concurrency=connect_concurrency,
            reconnect_storm=reconnect_storm,
            storm_offline=storm_offline,
            heartbeat=heartbeat,
            alarm_rate=alarm_rate,
            drain_timeout=drain_timeout,
            record_sent=not no_sent_list,
            handshake=handshake,
        )
        console = Console(stderr=True)
        try:
            summary = _run(cfg, progress and console.is_terminal, uvloop)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None
        except OSError as exc:
            typer.echo(f"error: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from exc
        if out:
            try:
                summary.write_json(out)
            except OSError as exc:
                typer.echo(f"error: cannot write the summary to {out}: {exc.strerror or exc}", err=True)
                raise typer.Exit(1) from exc
        from sinogate.simulate.display import print_summary

        print_summary(console, summary, out)
        connected = sum(1 for d in summary.devices if d.connects)
        if connected < len(summary.devices):
            ports = {"h02": cfg.h02_port, "jt808": cfg.jt808_port}
            where = ", ".join(f"{cfg.host}:{ports[p]}" for p in sorted({d.protocol for d in summary.devices
                                                                         if not d.connects}))
            typer.echo(f"error: {len(summary.devices) - connected} of {len(summary.devices)} simulated devices "
                       f"could not connect to {where}", err=True)
            raise typer.Exit(1)
