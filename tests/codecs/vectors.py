"""Locate the shared test vectors: ``$SINOGATE_VECTORS`` or ``<repo>/../shared/vectors``.

Fails loudly (an error, not a skip) when the directory is missing, so a misconfigured checkout
never passes by testing nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def vectors_dir() -> Path:
    env = os.environ.get("SINOGATE_VECTORS")
    path = Path(env) if env else REPO.parent / "shared" / "vectors"
    if not path.is_dir():
        raise RuntimeError(
            f"test vectors not found at {path}; set SINOGATE_VECTORS to the shared/vectors directory"
        )
    return path


def load(name: str) -> Any:
    """Parsed JSON of one vectors file, e.g. ``load("jt808.json")``."""
    path = vectors_dir() / name
    if not path.is_file():
        raise RuntimeError(f"vector file {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))
