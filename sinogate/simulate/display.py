"""Rich live progress (refreshed from counters 4×/s, never per message) and the final summary table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from sinogate.simulate.config import Summary
from sinogate.simulate.device import Stats


class ProgressView:
    """A rich renderable factory: each call reads the shared counters and computes the rate."""

    def __init__(self, stats: Stats, title: str) -> None:
        self.stats = stats
        self.title = title
        self.t0 = time.monotonic()
        self.last_t = self.t0
        self.last_sent = 0
        self.rate = 0.0

    def __call__(self) -> Table:
        s = self.stats
        now = time.monotonic()
        dt = now - self.last_t
        if dt >= 0.5:
            self.rate = (s.sent - self.last_sent) / dt
            self.last_t, self.last_sent = now, s.sent
        t = Table(title=self.title, show_header=True, header_style="bold")
        for col in ("elapsed", "connected", "sent", "acked", "errors", "commands", "msgs/s", "MB out"):
            t.add_column(col, justify="right")
        t.add_row(
            f"{now - self.t0:.1f}s",
            f"{s.connected}/{s.devices}",
            f"{s.sent:,}",
            f"{s.acked:,}",
            f"[red]{s.errors}[/red]" if s.errors else "0",
            str(s.commands),
            f"{self.rate:,.0f}",
            f"{s.bytes_sent / 1e6:.1f}",
        )
        return t


def print_summary(console: Console, summary: Summary, out: str | None) -> None:
    t = Table(title="simulation summary", show_header=True, header_style="bold")
    for col in ("protocol", "variant", "devices", "connected", "sent", "acked", "unacked", "errors", "commands"):
        t.add_column(col, justify="right")
    groups: dict[tuple[str, str], list[int]] = {}
    for d in summary.devices:
        g = groups.setdefault((d.protocol, d.variant), [0, 0, 0, 0, 0, 0])
        g[0] += 1
        g[1] += 1 if d.connects else 0
        g[2] += d.sent
        g[3] += d.acked
        g[4] += d.errors
        g[5] += len(d.commands)
    for (proto, variant), g in sorted(groups.items()):
        t.add_row(proto, variant, *(f"{v:,}" for v in g[:4]), f"{g[2] - g[3]:,}", str(g[4]), str(g[5]))
    console.print(t)
    console.print(
        f"sent {summary.sent:,} positions in {summary.sending_seconds:.1f}s = "
        f"[bold]{summary.msgs_per_s:,.0f} msgs/s[/bold], acked {summary.acked:,}, "
        f"{summary.bytes_sent / 1e6:.1f} MB" + (f"; details in {out}" if out else "")
    )
