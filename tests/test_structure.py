"""The package's structure: no import cycles, and services built only by the composition root."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sinogate"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module → the package modules it imports, counting every import statement: function-local
    ones and those under ``if TYPE_CHECKING:`` too (a hidden dependency is still one).
    ``from pkg import sub`` depends on the submodule; ``from pkg import Name`` on ``pkg`` itself."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    mod = node.module or ""
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in files]
                names = len(subs) < len(node.names)
                candidates = [*subs, *([mod] if names else [])]
            else:
                continue
            for candidate in candidates:
                if candidate in files:
                    targets.add(candidate)
        targets.discard(name)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_inside_the_package() -> None:
    graph = _graph()
    assert graph.get("sinogate.runtime")
    assert _cycles(graph) == []


# Classes that are services: built once per process, wired by the composition root.
SERVICES = frozenset({
    "SQLiteStore", "MemoryStore", "DeviceRegistry", "SessionRegistry", "EventBus", "IngestService",
    "CommandService", "Pipeline", "DeviceStates", "Tasks", "DeferredWrites", "TokenService", "MessageEvents",
    "GeofenceService", "CommandSupport",
    "PluginSet", "PluginRunner", "CellDatabase", "AddressBook",
    "MqttBridge", "NotificationService", "Senders", "Metrics",
    "CalcRegistry", "IntervalEvents", "Recalculator",
    "ClusterNode", "ClusterMember", "EventRelay",
})


def test_only_the_composition_root_constructs_services() -> None:
    builders: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SERVICES:
                builders.setdefault(node.func.id, set()).add(_module(path))
    outside = {cls: mods - {"sinogate.runtime"} for cls, mods in builders.items() if mods - {"sinogate.runtime"}}
    assert outside == {}
    assert {"IngestService", "CommandService", "SessionRegistry", "Pipeline"} <= set(builders)
