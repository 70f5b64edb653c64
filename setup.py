"""Optional build step: the codecs' decoding modules compiled with mypyc, as C extensions beside
their sources (``make install`` runs it after installing the package)::

    python setup.py build_ext --inplace

The package never needs it. Without mypy (mypyc ships with it) or a C compiler, or with
``SINOGATE_PURE_CODECS=1``, nothing is built and the codecs run as the pure-Python modules; a
failed compilation is reported and ignored. A build writes ``sinogate/codecs/_compiled.txt``: the
hash of each compiled module's source. ``sinogate/codecs/__init__.py`` loads the compiled modules
only while those hashes match the sources (an edited module runs as Python until it is rebuilt)
and never when ``SINOGATE_PURE_CODECS`` is set. Any other setuptools command (``pip install``)
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
MANIFEST = ROOT / "sinogate" / "codecs" / "_compiled.txt"
# The hot path: framing and decoding. Specs, commands and the package modules stay Python.
COMPILED = [
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
]


def _manifest(note: str, modules: list[str]) -> None:
    lines = [f"# {note}"]
    for path in modules:
        digest = hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
        lines.append(f"{path[:-3].replace('/', '.')} {digest}")
    MANIFEST.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _extensions() -> list:  # type: ignore[type-arg]
    if "build_ext" not in sys.argv or os.environ.get("SINOGATE_PURE_CODECS"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        print(f"mypyc not available ({exc}): the codecs stay pure Python", file=sys.stderr)
        _manifest(f"not compiled: {exc}", [])
        return []
    MANIFEST.unlink(missing_ok=True)  # until the build succeeds, nothing compiled is trusted
    try:
        return mypycify(COMPILED, opt_level="3", group_name="sinogate.codecs._native")
    except BaseException as exc:  # mypyc reports type errors with SystemExit
        print(f"mypyc failed ({exc!r}): the codecs stay pure Python", file=sys.stderr)
        _manifest(f"not compiled: mypyc failed: {exc!r}", [])
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that never fails the install: a failed compilation leaves pure Python."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:
            print(f"compiling the codecs failed ({exc!r}): they stay pure Python", file=sys.stderr)
            _manifest(f"not compiled: {exc!r}", [])
            return
        _manifest("compiled with mypyc by setup.py build_ext; a module whose source differs loads as Python",
                  COMPILED)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
