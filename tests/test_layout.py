"""The package's imports point down only, with no circle (an import inside a function counts).

Layers, top to bottom: the estimators and their services, the fit plan, the loop, the
engines, the numerical core, the backend. The loop imports no engine (the plan hands
it one), and nothing below the plan imports the plan or an estimator.
"""

import ast
from pathlib import Path

import sk_gpusgd

PACKAGE = Path(sk_gpusgd.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every sk_gpusgd module and the sk_gpusgd modules it imports, anywhere in it."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                found.add(target)
                found |= {f"{target}.{alias.name}" for alias in node.names}
        graph[name] = found
    modules = set(graph)
    return {
        name: {t for t in targets if t in modules and t != name} for name, targets in graph.items()
    }


LOOP = {"sk_gpusgd._engines.loop", "sk_gpusgd._engines.rounds", "sk_gpusgd._engines.progress"}


def _layer(module: str) -> int:
    """0 backend, 1 core, 2 engines, 3 the loop, 4 the plan, 5 the estimators."""
    if module.startswith("sk_gpusgd._backend"):
        return 0
    if module.startswith("sk_gpusgd._core"):
        return 1
    if module in LOOP:
        return 3
    if module.startswith("sk_gpusgd._engines"):
        return 2
    if module in ("sk_gpusgd._plan", "sk_gpusgd._runs"):
        return 4
    return 5


def test_no_import_circle():
    graph = _imports()
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in graph[module]:
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_imports_point_down():
    wrong = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not wrong, wrong


def test_the_loop_imports_no_engine():
    engines = {
        target
        for target in _imports()["sk_gpusgd._engines.loop"]
        if target.startswith("sk_gpusgd._engines") and target not in LOOP
    }
    assert not engines, engines
