"""Which modules run compiled (mypyc, ``setup.py``) and which as Python.

``setup.py build_ext --inplace`` compiles two groups of hot-path modules into C extensions beside
their sources: the codecs' framing and decoding (manifest ``sinogate/codecs/_compiled.txt``) and
the phase-1 pipeline with the analytics and telemetry code it runs per message (manifest
``sinogate/pipeline/_compiled.txt``). Each manifest lists its group's modules with the hash of the
source each was built from. Python would import such an extension in preference to the ``.py``
beside it, even a stale one; so ``install()`` (run by ``sinogate/__init__.py``, before any other
module of the package) puts a finder first on ``sys.meta_path`` that loads every ``sinogate``
module from its ``.py`` source unless it belongs to a group whose every module still has its listed
hash, and every module from source when ``SINOGATE_PURE_PYTHON`` is set (``make test`` runs the
codec, pipeline and analytics tests both ways). Without a build nothing changes: there is nothing
compiled to shadow the sources.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent
MANIFESTS = (_HERE / "codecs" / "_compiled.txt", _HERE / "pipeline" / "_compiled.txt")
_PREFIX = "sinogate."
PURE = bool(os.environ.get("SINOGATE_PURE_PYTHON"))
"""``SINOGATE_PURE_PYTHON`` is set: every module runs from its source."""


def _fresh(manifest: Path) -> frozenset[str]:
    """The modules listed in ``manifest`` when every one's source still has the listed hash; else
    none (they are one compiled group: a compiled module calls its group's code directly)."""
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    fresh = set()
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        name, _, digest = line.partition(" ")
        if not name.startswith(_PREFIX) or not digest:
            return frozenset()
        source = _HERE.joinpath(*name[len(_PREFIX):].split(".")).with_suffix(".py")
        try:
            if hashlib.sha256(source.read_bytes()).hexdigest() != digest:
                return frozenset()
        except OSError:
            return frozenset()
        fresh.add(name)
    return frozenset(fresh)


class _SourceFinder:
    """Finds ``sinogate`` modules outside ``compiled`` as their ``.py`` source only."""

    def __init__(self, compiled: frozenset[str]) -> None:
        self.compiled = compiled

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX) or fullname in self.compiled or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, leaf + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package, or not ours: the usual finders decide


COMPILED: frozenset[str] = frozenset() if PURE else frozenset().union(*(_fresh(m) for m in MANIFESTS))
"""The modules that may load compiled (listed in a fresh manifest)."""


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(COMPILED))


def compiled(module: ModuleType) -> bool:
    """Did ``module`` load as a compiled extension?"""
    return not (getattr(module, "__file__", None) or "").endswith(".py")
