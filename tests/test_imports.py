"""The project's modules import one another one way: no cycle, TYPE_CHECKING and imports
inside functions counted too (a cycle is a cycle wherever its import stands)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).parents[1]
PACKAGES = ("archive", "sandbox", "benchmarks", "dgm")
# code that is not the project's modules: agents, benchmark data, migrations, tests
OUTSIDE = {"seed_agent", "suites", "migrations", "tests"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if OUTSIDE & set(parts):
                continue
            name = ".".join(parts).removesuffix(".__init__")
            found[name] = path
    return found


def imports_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    for name, path in found.items():
        graph.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                # `from package import module` depends on the module, not the package's face
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in found else base
                           for a in node.names]  # fmt: skip
            else:
                continue
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph.add_edge(name, target)
    return graph


def test_no_module_imports_itself_back():
    graph = imports_graph()
    assert len(graph) > 50 and graph.has_edge("dgm.engine", "dgm.search")
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_the_layers_import_one_way():
    # dgm -> benchmarks -> sandbox, dgm -> archive; archive and sandbox import neither
    graph = imports_graph()
    for lower in ("archive", "sandbox"):
        for name in graph:
            if name.split(".")[0] == lower:
                above = {t.split(".")[0] for t in graph.successors(name)} - {lower}
                assert not above & {"dgm", "benchmarks", "archive", "sandbox"} - {lower}, name
    for name in graph:
        if name.startswith("benchmarks"):
            assert not any(t.startswith("dgm") for t in graph.successors(name)), name
    search = [n for n in graph if n.startswith("dgm.search")]
    for name in search:  # the search does no I/O: nothing of the archive, sandboxes or engine
        assert all(t.startswith("dgm.search") for t in graph.successors(name)), name
