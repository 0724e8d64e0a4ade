"""Lineage queries over the archive tree (networkx over the node table's parent links)."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx


class Lineage:
    """A snapshot of the archive's parent -> child edges."""

    def __init__(self, parent_of: Iterable[tuple[str, str | None]]):
        pairs = list(parent_of)
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(node for node, _ in pairs)
        self.graph.add_edges_from((parent, node) for node, parent in pairs if parent is not None)

    def __contains__(self, node: str) -> bool:
        return node in self.graph

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def parent(self, node: str) -> str | None:
        return next(iter(self.graph.predecessors(node)), None)

    def children(self, node: str) -> list[str]:
        return sorted(self.graph.successors(node))

    def path_to_root(self, node: str) -> list[str]:
        """The node, its parent, ... up to its root."""
        path = [node]
        while (parent := self.parent(path[-1])) is not None:
            path.append(parent)
        return path

    def ancestors(self, node: str) -> list[str]:
        """Root first, the node's parent last."""
        return self.path_to_root(node)[:0:-1]

    def depth(self, node: str) -> int:
        return len(self.path_to_root(node)) - 1

    def descendants(self, node: str) -> set[str]:
        return nx.descendants(self.graph, node)

    def clade(self, node: str) -> set[str]:
        """The node and all its descendants."""
        return self.descendants(node) | {node}

    def roots(self) -> list[str]:
        return sorted(n for n, degree in self.graph.in_degree() if degree == 0)

    def depths(self) -> dict[str, int]:
        """Depth of every node, in one pass from the roots."""
        depths: dict[str, int] = {}
        for root in self.roots():
            depths.update(nx.single_source_shortest_path_length(self.graph, root))
        return depths
