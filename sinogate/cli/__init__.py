"""The ``sinogate`` command. Each sub-command lives in its own module of this package and
exposes ``register(app)``; modules are discovered, so adding a command touches no shared file."""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="sinogate",
    help="Self-hosted telematics gateway for Sinotrack (H02) and JT/T 808 GPS trackers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Self-hosted telematics gateway for Sinotrack (H02) and JT/T 808 GPS trackers."""


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_load_commands()


def main() -> None:
    app()
