"""Dependencies point one way: the import graph of src/pinelab, read with `ast`.

Every import counts, at module level, inside a function or under TYPE_CHECKING. The rules:
no import cycle; `api/` (HTTP plumbing) imports no domain package; a domain module imports `api`
only from its HTTP edge (router, dependencies, schemas, cli); `jobs/` (a generic queue) imports
no domain package outside that edge. Base packages, importable by anyone: db, ops, config,
errors, logging, clock, api, and the composition root (main, cli).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pinelab

SRC = Path(pinelab.__file__).resolve().parent
BASE = frozenset(
    {"api", "db", "ops", "config", "errors", "logging", "clock", "main", "cli", "__main__"}
)
HTTP_EDGE = frozenset({"router", "dependencies", "schemas", "cli"})

Graph = dict[str, frozenset[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Yield every dotted name an import statement may refer to (module or module.attribute)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _owner(name: str, modules: frozenset[str]) -> str | None:
    """Return the module of ours a dotted name lives in (`a.b.func` → `a.b`), if any."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def import_graph() -> Graph:
    """Map each module of src/pinelab (migrations aside) to the modules of ours it imports."""
    paths = {
        _module_name(path): path
        for path in SRC.rglob("*.py")
        if "migrations" not in path.relative_to(SRC).parts
    }
    modules = frozenset(paths)
    graph: Graph = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in _imported(module, path.name == "__init__.py", node):
                    owner = _owner(name, modules) if name.startswith("pinelab") else None
                    if owner is not None and owner != module:
                        targets.add(owner)
        graph[module] = frozenset(targets)
    return graph


def package_of(module: str) -> str:
    """Return the top-level package (or module) under pinelab that holds a module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def is_domain(module: str) -> bool:
    """Tell whether a module belongs to a domain package (anything not base)."""
    return module != "pinelab" and package_of(module) not in BASE


def cycles(graph: Graph) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _edges(graph: Graph) -> Iterator[tuple[str, str]]:
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            yield module, target


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "pinelab.signals.router" in graph["pinelab.main"]  # module level
    assert "pinelab.main" in graph["pinelab.cli"]  # inside a function
    assert "pinelab.db.engine" in graph["pinelab.db"]  # a package's __init__.py
    assert "pinelab.jobs.worker" in graph["pinelab.jobs.dependencies"]
    assert len(graph) > 100


def test_there_is_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "\n".join(" <-> ".join(cycle) for cycle in found)


def test_api_imports_no_domain_package() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, target in _edges(import_graph())
        if package_of(module) == "api" and is_domain(target)
    ]
    assert offenders == [], "\n".join(offenders)


def test_only_the_http_edge_of_a_domain_imports_api() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, target in _edges(import_graph())
        if is_domain(module)
        and package_of(target) == "api"
        and module.rpartition(".")[2] not in HTTP_EDGE
    ]
    assert offenders == [], "\n".join(offenders)


def test_jobs_is_a_generic_queue_that_imports_no_domain_package() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, target in _edges(import_graph())
        if package_of(module) == "jobs"
        and module.rpartition(".")[2] not in HTTP_EDGE
        and is_domain(target)
        and package_of(target) != "jobs"
    ]
    assert offenders == [], "\n".join(offenders)


def test_relative_imports_resolve_against_the_importing_module() -> None:
    statements = ast.parse("from . import models\nfrom ..db import engine").body
    within = [
        list(_imported("pinelab.jobs.queue", False, node))
        for node in statements
        if isinstance(node, ast.ImportFrom)
    ]
    assert within == [
        ["pinelab.jobs", "pinelab.jobs.models"],
        ["pinelab.db", "pinelab.db.engine"],
    ]


def test_cycles_are_found_through_any_number_of_modules() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset()}
    assert cycles(graph) == [["a", "b", "c"]]
