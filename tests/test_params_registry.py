"""The parameter registry: complete, consistent, and the docs generated from it are current."""

from __future__ import annotations

from pathlib import Path

from sinogate.cli.params import registry_markdown
from sinogate.model.params import CORE_NAMES, all_params

DOC = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


def test_core_set_is_complete() -> None:
    assert len(CORE_NAMES) == 43
    assert {"position.latitude", "position.speed", "engine.ignition.status", "timestamp", "server.timestamp",
            "ident", "vendor.code"} <= CORE_NAMES


def test_no_name_is_declared_twice() -> None:
    from sinogate.model.params import _CORE, _EXTRA

    declared = [p.name for p in (*_CORE, *_EXTRA)]
    assert len(declared) == len(set(declared))


def test_every_param_is_well_formed() -> None:
    params = all_params()
    names = [p.name for p in params]
    assert len(names) == len(set(names))
    for p in params:
        assert p.name == p.name.lower() and " " not in p.name, p.name
        assert p.type in {"number", "string", "boolean", "any"}, p
        assert p.meaning, p.name
    # sinogate's additions named in the protocol-core issue are registered
    assert {"command.code", "command.response", "vehicle.state.bitmask", "vehicle.mileage", "position.satellites",
            "gsm.signal.level", "external.powersource.voltage", "battery.voltage", "gsm.sim.iccid",
            "position.blackbox", "alarm.bitmask", "status.bitmask"} <= set(names)


def test_docs_are_generated_from_the_registry() -> None:
    hint = "regenerate it: sinogate params --markdown > docs/parameters.md"
    assert DOC.read_text(encoding="utf-8") == registry_markdown(), hint
