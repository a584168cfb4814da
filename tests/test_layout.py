"""The package's imports run in one direction: no circles, the core never climbs.

Read from the source (every `import`, module-level or inside a function, since a
lazy import is still a dependency): a circle, or a core module importing a
command, fails the build the day it appears.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cardd

PACKAGE = Path(cardd.__file__).resolve().parent

#: Commands: what `cardd.cli` calls. Nothing below them may import one.
COMMANDS = {
    "cardd.cli", "cardd.demo", "cardd.train", "cardd.evaluate", "cardd.infer", "cardd.infer_ray",
    "cardd.export", "cardd.export_onnx", "cardd.serve", "cardd.assess", "cardd.doctor",
}  # fmt: skip
#: The torch-free core every layer stands on: errors, files and folders, options, logs.
CORE = {
    "cardd.errors", "cardd.files", "cardd.resources", "cardd.runs", "cardd.storage",
    "cardd.console", "cardd.logs", "cardd.download", "cardd.devices",
}  # fmt: skip


def module_graph() -> dict[str, set[str]]:
    """cardd's modules and the cardd modules each imports."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                found = [s for s in subs if s in modules]
                targets = found if len(found) == len(subs) else [node.module, *found]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert circles(module_graph()) == []


def test_the_core_and_shared_modules_import_no_command():
    graph = module_graph()
    assert COMMANDS <= set(graph) and CORE <= set(graph)  # the lists name real modules
    climbing = {
        (module, target)
        for module, targets in graph.items()
        if module not in COMMANDS and module != "cardd.__main__"
        for target in targets & COMMANDS
    }
    assert climbing == set()
    core_leaks = {(m, t) for m in CORE for t in graph[m] - CORE}
    assert core_leaks == set()


def test_the_check_sees_a_circle():
    """The control: a graph with a circle is reported."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
