"""cardd's packages stand in layers and import downward only: no circles.

Read from the source (every `import`, module-level or inside a function, since a
lazy import is still a dependency): a circle, a package importing one of its own
layer or above, or the core importing anything but itself, fails the build the
day it appears. `docs/explanation/architecture.md` states the same rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cardd

PACKAGE = Path(cardd.__file__).resolve().parent

#: Each package (or top-level module) and its layer, lowest first. A module may
#: import its own package and any package of a lower layer, nothing else.
LAYERS = {
    "cardd.core": 0,  # no torch, no mmdet: errors, options, files, folders, logs
    "cardd.structures": 1,  # classes and palettes, detections, images
    "cardd.visualize": 2,  # drawing, plots, reports
    "cardd.models": 3,  # configs, checkpoints, trust, the model record
    "cardd.data": 4,  # datasets
    "cardd.detector": 4,  # the inference front, its engines, inputs, ImageResult
    "cardd.openmmlab": 5,  # what cardd registers into OpenMMLab
    "cardd.train": 6,  # the commands' libraries: none imports another of its layer
    "cardd.evaluate": 6,
    "cardd.infer": 6,
    "cardd.export": 6,
    "cardd.assess": 7,  # reads photos through infer's inputs
    "cardd.serve": 8,  # serves detection and assessment
    "cardd.demo": 9,  # a pipeline of commands
    "cardd.doctor": 9,
    "cardd.mmdet_plugins": 9,  # the old name configs import
    "cardd": 10,  # the public API (lazy)
    "cardd.cli": 11,
    "cardd.__main__": 12,
}


def package_of(module: str) -> str:
    """The entry of LAYERS a module belongs to."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        if ".".join(parts[:length]) in LAYERS:
            return ".".join(parts[:length])
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


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
                if node.module == "cardd" and [a.name for a in node.names] == ["__version__"]:
                    continue  # the version string, defined before anything is imported
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


def test_every_import_goes_down_the_layers():
    graph = module_graph()
    climbing = sorted(
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if package_of(target) != package_of(module)
        and LAYERS[package_of(target)] >= LAYERS[package_of(module)]
    )
    assert climbing == []


def test_the_layers_name_real_packages():
    packages = {package_of(module) for module in module_graph()}
    assert packages == set(LAYERS)


def test_the_core_and_structures_import_no_torch_or_openmmlab_when_imported():
    """The core and the result types load where PyTorch is not installed (the ONNX
    runtime): their modules ask for torch or mmengine only inside the functions that
    use them when present (which device, mmengine's logger)."""
    heavy = {"torch", "torchvision", "mmcv", "mmdet", "mmengine", "onnxruntime", "ray"}
    found = set()
    for path in [*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "structures").rglob("*.py")]:
        for node in ast.parse(path.read_text()).body:  # module level only
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            )  # fmt: skip
            found |= {(path.name, n) for n in names if n.split(".")[0] in heavy}
    assert found == set()


def test_the_check_sees_a_circle():
    """The control: a graph with a circle is reported."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_check_sees_a_climb():
    """The control: a layer's own name places its modules; an unknown package fails."""
    assert package_of("cardd.core.files") == "cardd.core"
    assert LAYERS[package_of("cardd.detector.predictor")] > LAYERS[package_of("cardd.core.files")]
