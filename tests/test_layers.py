"""The house rules of the import graph (ARCHITECTURE.md, "Rules of the house"), read from the source with ``ast``.

- no import cycle between modules at import time (module-level imports; ``if TYPE_CHECKING:`` blocks excepted);
- core never imports apps, and an app never imports another app;
- inside core the floors point one way: ``config ← jobs ← hpo ← bridge``, ``data ← config``, ``train ← config, data,
  jobs``; only an area's ``cli.py`` reaches up to the ``kakehashi`` command (``core.cli``).

Function-level imports count for the floors (they are dependencies all the same) but not for cycles (they run
after both modules are loaded).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what each floor of core may import besides itself and the shared ground floor (errors, files, lazy, __init__)
GROUND = {"errors", "files", "lazy", ""}
FLOORS = {
    "config": set(),
    "jobs": {"config"},
    "hpo": {"config", "jobs"},
    "bridge": {"config", "jobs", "hpo"},
    "data": {"config"},
    "train": {"config", "data", "jobs"},
    "ros": {"config"},
    "workflow": {"config", "jobs"},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    modules: dict[str, tuple[Path, bool]] = {}
    for top in ("core", "apps"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            package = path.name == "__init__.py"
            modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, *, module_level: bool) -> set[str]:
    """The project modules ``module`` imports (all of them, or those run when it is imported)."""
    path, package = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    if module_level:
        nodes: list[ast.AST] = []
        for statement in tree.body:
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                continue
            nodes.extend(ast.walk(statement) if isinstance(statement, ast.If | ast.Try | ast.With) else [statement])
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = [source, *(f"{source}.{alias.name}" for alias in node.names)]
        for name in names:
            target = _resolve(name) if name.split(".")[0] in ("core", "apps") else None
            if target is not None and target != module:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_module_imports_itself_back_at_import_time() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        graph[module] = _imports(module, module_level=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("core")))
def test_core_floors_point_one_way(module: str) -> None:
    parts = module.split(".")
    floor = parts[1] if len(parts) > 1 else ""
    is_cli = parts[-1] == "cli"
    wrong = []
    for target in _imports(module, module_level=False):
        target_parts = target.split(".")
        if target_parts[0] == "apps":
            wrong.append(f"{target} (core never imports apps)")
            continue
        target_floor = target_parts[1] if len(target_parts) > 1 else ""
        if target == "core.cli" and is_cli:
            continue
        if target_floor in GROUND | {floor} or floor in GROUND | {"cli"}:
            continue
        if target_floor not in FLOORS.get(floor, set()):
            wrong.append(f"{target} (the {floor} floor may use {sorted(FLOORS.get(floor, set())) or 'no other floor'})")
    assert not wrong, f"{module} imports upward: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("apps.")))
def test_an_app_never_imports_another_app(module: str) -> None:
    app = module.split(".")[1]
    others = {t for t in _imports(module, module_level=False) if t.startswith("apps.") and t.split(".")[1] != app}
    assert not others, f"{module} imports another app: {sorted(others)}"


def _readme_layout() -> set[str]:
    """The paths the README's layout block names (``core/``, ``core/cli.py``, ``apps/traffic/``, ...)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    paths: set[str] = set()
    parent = ""
    for line in block.splitlines():
        name = line.strip().split(" ", 1)[0]
        if not name.endswith(("/", ".py")):
            continue
        if line.startswith(" "):
            paths.add(parent + name)
        else:
            parent = name
            paths.add(name)
    return paths


def test_the_readme_layout_matches_the_tree() -> None:
    shown = _readme_layout()
    missing = sorted(path for path in shown if not (ROOT / path).exists())
    assert not missing, f"README's layout names what is not there: {missing}"
    actual = {
        f"{top}/{child.name}/" if child.is_dir() else f"{top}/{child.name}"
        for top in ("core", "apps")
        for child in (ROOT / top).iterdir()
        if child.name != "__init__.py"
        and not child.name.startswith((".", "__"))
        and (child.is_dir() or child.suffix == ".py")
    }
    assert sorted(actual - shown) == [], "README's layout leaves these out"
