"""Locate the test vectors: ``tests/data/vectors`` in this repository (see its README for where
each set comes from), or the directory ``$SINOGATE_VECTORS`` names when it is set.

Fails loudly (an error, not a skip) when the directory is missing, so a misconfigured checkout
never passes by testing nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "vectors"


def vectors_dir() -> Path:
    """``$SINOGATE_VECTORS`` when set (an optional override), else ``tests/data/vectors``."""
    env = os.environ.get("SINOGATE_VECTORS")
    path = Path(env) if env else DEFAULT_DIR
    if not path.is_dir():
        where = "SINOGATE_VECTORS names" if env else "the repository should hold"
        raise RuntimeError(f"test vectors not found at {path} ({where}); see tests/data/vectors/README.md")
    return path


def load(name: str) -> Any:
    """Parsed JSON of one vectors file, e.g. ``load("jt808.json")``."""
    path = vectors_dir() / name
    if not path.is_file():
        raise RuntimeError(f"vector file {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def check_expect(expect: dict[str, Any], msg: dict[str, Any]) -> None:
    """A vector's ``expect`` against a decoded message: coordinates within 1e-5 degree, speed within
    0.01 km/h, timestamp within 0.5 s, everything else equal and of the same JSON type."""
    import pytest

    for key, want in expect.items():
        assert key in msg, f"{key} missing; message has {sorted(msg)}"
        got = msg[key]
        if key in ("position.latitude", "position.longitude"):
            assert got == pytest.approx(want, abs=1e-5), key
        elif key == "position.speed":
            assert got == pytest.approx(want, abs=0.01), key
        elif key == "timestamp":
            assert got == pytest.approx(want, abs=0.5), key
        else:
            assert got == want and type(got) is type(want), f"{key}: want {want!r}, got {got!r}"
