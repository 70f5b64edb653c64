"""The compiled codec modules (mypyc, ``setup.py``) load only as the build and the switch say.

``make test`` runs the codec tests twice: as installed (compiled where ``make install`` could
build them) and with ``SINOGATE_PURE_CODECS=1`` (every module from its ``.py``). These tests pin
that each run really tests what it says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import sinogate.codecs
from sinogate.codecs import _native


def _loaded() -> dict[str, bool]:
    return {name: _native.compiled(module) for name, module in sys.modules.items()
            if name.startswith("sinogate.codecs.") and not name.endswith("__mypyc")  # the group's library
            and module is not None and hasattr(module, "__file__")}


def test_modules_load_as_the_manifest_and_the_switch_say() -> None:
    loaded = _loaded()
    assert "sinogate.codecs.h02.text" in loaded and "sinogate.codecs.jt808.location" in loaded
    if os.environ.get("SINOGATE_PURE_CODECS"):
        assert frozenset() == _native.COMPILED
    for name, is_compiled in loaded.items():
        assert is_compiled == (name in _native.COMPILED), name
    assert sinogate.codecs.compiled() == ("sinogate.codecs.h02.connection" in _native.COMPILED)


def test_a_changed_source_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = Path(_native.__file__).with_name("h02") / "text.py"
    import hashlib
    digest = hashlib.sha256(text.read_bytes()).hexdigest()
    manifest = tmp_path / "_compiled.txt"
    monkeypatch.setattr(_native, "_MANIFEST", manifest)
    assert _native._fresh() == frozenset()  # no manifest: nothing compiled is trusted
    manifest.write_text(f"# built\nsinogate.codecs.h02.text {digest}\n")
    assert _native._fresh() == frozenset({"sinogate.codecs.h02.text"})
    # one changed, missing or foreign module: the whole group is distrusted (compiled modules call
    # each other's compiled code directly)
    for extra in (f"sinogate.codecs.h02.binary {'0' * 64}", f"sinogate.codecs.h02.gone {digest}",
                  f"elsewhere.module {digest}"):
        manifest.write_text(f"# built\nsinogate.codecs.h02.text {digest}\n{extra}\n")
        assert _native._fresh() == frozenset(), extra


def test_the_finder_loads_sources_for_modules_not_trusted() -> None:
    finder = _native._SourceFinder(frozenset({"sinogate.codecs.h02.text"}))
    path = [str(Path(_native.__file__).with_name("h02"))]
    assert finder.find_spec("sinogate.codecs.h02.text", path) is None  # compiled may load
    spec = finder.find_spec("sinogate.codecs.h02.binary", path)
    assert spec is not None and spec.origin is not None and spec.origin.endswith("binary.py")
    assert finder.find_spec("sinogate.api.app", path) is None  # not a codec module
    assert finder.find_spec("sinogate.codecs.h02", [str(Path(_native.__file__).parent)]) is None  # a package
