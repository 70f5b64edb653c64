"""The compiled modules (mypyc, ``setup.py``) load only as the build and the switch say.

``make test`` runs the codec, pipeline and analytics tests twice: as installed (compiled where
``make install`` could build them) and with ``SINOGATE_PURE_PYTHON=1`` (every module from its
``.py``). These tests pin that each run really tests what it says.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import sinogate.codecs
import sinogate.pipeline.chain  # loads every handler, and the analytics they use
import sinogate.store.telemetry
from sinogate import _native


def _loaded() -> dict[str, bool]:
    return {name: _native.compiled(module) for name, module in sys.modules.items()
            if name.startswith("sinogate.") and not name.endswith("__mypyc")  # a group's library
            and getattr(module, "__file__", None)}  # (a namespace package has none)


def test_modules_load_as_the_manifests_and_the_switch_say() -> None:
    loaded = _loaded()
    for name in ("sinogate.codecs.h02.text", "sinogate.codecs.jt808.location", "sinogate.pipeline.calcs",
                 "sinogate.analytics.intervals", "sinogate.store.telemetry"):
        assert name in loaded
    if os.environ.get("SINOGATE_PURE_PYTHON"):
        assert frozenset() == _native.COMPILED
    for name, is_compiled in loaded.items():
        assert is_compiled == (name in _native.COMPILED), name
    assert sinogate.codecs.compiled() == ("sinogate.codecs.h02.connection" in _native.COMPILED)


def test_a_changed_source_is_not_trusted(tmp_path: Path) -> None:
    text = Path(_native.__file__).parent / "codecs" / "h02" / "text.py"
    digest = hashlib.sha256(text.read_bytes()).hexdigest()
    manifest = tmp_path / "_compiled.txt"
    assert _native._fresh(manifest) == frozenset()  # no manifest: nothing compiled is trusted
    manifest.write_text(f"# built\nsinogate.codecs.h02.text {digest}\n")
    assert _native._fresh(manifest) == frozenset({"sinogate.codecs.h02.text"})
    # one changed, missing or foreign module: the whole group is distrusted (compiled modules call
    # each other's compiled code directly)
    for extra in (f"sinogate.codecs.h02.binary {'0' * 64}", f"sinogate.codecs.h02.gone {digest}",
                  f"elsewhere.module {digest}"):
        manifest.write_text(f"# built\nsinogate.codecs.h02.text {digest}\n{extra}\n")
        assert _native._fresh(manifest) == frozenset(), extra


def test_the_finder_loads_sources_for_modules_not_trusted() -> None:
    root = Path(_native.__file__).parent
    finder = _native._SourceFinder(frozenset({"sinogate.codecs.h02.text"}))
    path = [str(root / "codecs" / "h02")]
    assert finder.find_spec("sinogate.codecs.h02.text", path) is None  # compiled may load
    spec = finder.find_spec("sinogate.codecs.h02.binary", path)
    assert spec is not None and spec.origin is not None and spec.origin.endswith("binary.py")
    spec = finder.find_spec("sinogate.pipeline.calcs", [str(root / "pipeline")])
    assert spec is not None and spec.origin is not None and spec.origin.endswith("calcs.py")
    assert finder.find_spec("numpy.core", path) is None  # not ours
    assert finder.find_spec("sinogate.codecs.h02", [str(root / "codecs")]) is None  # a package


def test_an_interpreted_handler_subclasses_the_compiled_base() -> None:
    """Handlers outside the compiled group (tests, later plugins) subclass the compiled Handler and
    run in the compiled runner."""
    from sinogate.pipeline.base import Context, Handler, Message
    from sinogate.pipeline.runner import Pipeline

    class Tag(Handler):
        name = "tag"

        def handle(self, message: Message, ctx: Context) -> Message | None:
            message["tagged"] = ctx.protocol
            return message

    ctx = Context("h02", "tcp", "127.0.0.1:1", 1.0, None, 0, 0)
    assert Pipeline([Tag({})]).run([{"a": 1}], ctx) == [{"a": 1, "tagged": "h02"}]
