"""Optional build step: the hot path's modules (the codecs' decoding, the phase-1 pipeline) compiled
with mypyc, as C extensions beside their sources (``make install`` runs it after installing the
package)::

    python setup.py build_ext --inplace

The package never needs it. Without mypy (mypyc ships with it) or a C compiler, or with
``SINOGATE_PURE_PYTHON=1``, nothing is built and every module runs as Python; a failed
compilation is reported and ignored. A build writes one manifest per group
(``sinogate/codecs/_compiled.txt``, ``sinogate/pipeline/_compiled.txt``): the hash of each compiled
module's source. ``sinogate/_native.py`` loads a group's compiled modules only while those hashes
match the sources (an edited module's group runs as Python until it is rebuilt) and never when
``SINOGATE_PURE_PYTHON`` is set. Any other setuptools command (``pip install``)
builds nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# The hot path, in two groups (each one mypyc library; see ``sinogate/_native.py``): framing and
# decoding; and the phase-1 pipeline with what it runs per message (trips and stops, distances,
# the telemetry rule). Specs, commands, the API, sessions and the stores stay Python.
GROUPS: dict[str, tuple[Path, list[str]]] = {
    "sinogate.codecs._native": (ROOT / "sinogate" / "codecs" / "_compiled.txt", [
        "sinogate/codecs/h02/binary.py",
        "sinogate/codecs/h02/connection.py",
        "sinogate/codecs/h02/fields.py",
        "sinogate/codecs/h02/framer.py",
        "sinogate/codecs/h02/status.py",
        "sinogate/codecs/h02/text.py",
        "sinogate/codecs/jt808/bits.py",
        "sinogate/codecs/jt808/connection.py",
        "sinogate/codecs/jt808/frame.py",
        "sinogate/codecs/jt808/location.py",
        "sinogate/codecs/jt808/messages.py",
    ]),
    "sinogate.pipeline._native": (ROOT / "sinogate" / "pipeline" / "_compiled.txt", [
        "sinogate/analytics/geo.py",
        "sinogate/analytics/intervals.py",
        "sinogate/pipeline/base.py",
        "sinogate/pipeline/calcs.py",
        "sinogate/pipeline/clock.py",
        "sinogate/pipeline/edges.py",
        "sinogate/pipeline/enrich.py",
        "sinogate/pipeline/filters.py",
        "sinogate/pipeline/geofencing.py",
        "sinogate/pipeline/odometer.py",
        "sinogate/pipeline/overspeed.py",
        "sinogate/pipeline/plugins.py",
        "sinogate/pipeline/presence.py",
        "sinogate/pipeline/runner.py",
        "sinogate/pipeline/time_sanity.py",
        "sinogate/store/telemetry.py",
    ]),
}


def _manifests(note: str, built: bool) -> None:
    for manifest, modules in GROUPS.values():
        lines = [f"# {note}"]
        for path in modules if built else []:
            digest = hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
            lines.append(f"{path[:-3].replace('/', '.')} {digest}")
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _extensions() -> list:  # type: ignore[type-arg]
    if "build_ext" not in sys.argv or os.environ.get("SINOGATE_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        print(f"mypyc not available ({exc}): everything stays pure Python", file=sys.stderr)
        _manifests(f"not compiled: {exc}", False)
        return []
    for manifest, _ in GROUPS.values():  # until the build succeeds, nothing compiled is trusted
        manifest.unlink(missing_ok=True)
    try:
        return [ext for group, (_, modules) in GROUPS.items()
                for ext in mypycify(modules, opt_level="3", group_name=group)]
    except BaseException as exc:  # mypyc reports type errors with SystemExit
        print(f"mypyc failed ({exc!r}): everything stays pure Python", file=sys.stderr)
        _manifests(f"not compiled: mypyc failed: {exc!r}", False)
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that never fails the install: a failed compilation leaves pure Python."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:
            print(f"compiling failed ({exc!r}): everything stays pure Python", file=sys.stderr)
            _manifests(f"not compiled: {exc!r}", False)
            return
        _manifests("compiled with mypyc by setup.py build_ext; a group whose sources differ loads as Python", True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
