"""The lineage tree laid out on the server and drawn as one SVG.

Depth runs left to right and each leaf gets its own row; a parent sits midway between its
first and last child, so the drawing is as tall as the tree has leaves and never overlaps.
A node's dead branches (no node in them admitted or still in play: rejected children and
what grew from them) are folded into one marker counting what it hides, unless it is opened.
Linear in the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import networkx as nx

from archive.records import NodeStatus, NodeSummary

MARKER = "dead:"  # the id of the marker folding a node's dead children: MARKER + its id
ROW = 18  # pixels between leaf rows
COLUMN = 64  # pixels between generations
MARGIN = 24
RADIUS = 5


@dataclass
class Placed:
    id: str
    parent: str | None
    depth: int
    row: float
    status: str
    resolved: int
    attempted: int
    risk: str | None
    decision: str | None
    hidden: int = 0
    """For a marker (status `dead`): the nodes of the dead branches it stands for."""

    @property
    def score(self) -> float | None:
        return self.resolved / self.attempted if self.attempted else None

    @property
    def x(self) -> float:
        return MARGIN + self.depth * COLUMN

    @property
    def y(self) -> float:
        return MARGIN + self.row * ROW


@dataclass
class Layout:
    placed: list[Placed]
    width: int
    height: int
    total: int
    """Nodes in the tree, hidden ones included."""
    folded: int = 0
    """Markers standing for dead children."""

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "shown": len(self.placed),
            "nodes": [
                {
                    "id": p.id,
                    "parent": p.parent,
                    "x": p.x,
                    "y": p.y,
                    "status": p.status,
                    "score": p.score,
                    "resolved": p.resolved,
                    "attempted": p.attempted,
                    "risk": p.risk,
                    "decision": p.decision,
                    "hidden": p.hidden,
                }
                for p in self.placed
            ],
        }


def layout(
    rows: list[NodeSummary],
    marks: dict[str, tuple[str | None, str | None]],
    *,
    collapse_dead: bool = True,
    opened: frozenset[str] = frozenset(),
) -> Layout:
    """Rows in creation order (parents first); `marks`: each node's risk and decision. With
    `collapse_dead`, a node's dead children (clades with nothing admitted or in play) are
    folded into one marker unless the node is in `opened`."""
    graph = nx.DiGraph()
    graph.add_nodes_from(r.id for r in rows)
    by_id = {r.id: r for r in rows}
    graph.add_edges_from((r.parent_id, r.id) for r in rows if r.parent_id in by_id)
    alive = {r.id: r.status is not NodeStatus.REJECTED for r in rows}
    size = dict.fromkeys(by_id, 1)
    for r in reversed(rows):  # children before parents: clade sizes and liveness bubble up
        if r.parent_id in by_id:
            alive[r.parent_id] = alive[r.parent_id] or alive[r.id]
            size[r.parent_id] += size[r.id]
    folded: dict[str, int] = {}  # node -> nodes its marker hides

    def kids(node: str) -> list[str]:
        children = list(graph.successors(node))
        if not collapse_dead or node in opened or not alive[node]:
            return children
        dead = [c for c in children if not alive[c]]
        if dead:
            folded[node] = sum(size[c] for c in dead)
            return [c for c in children if alive[c]] + [MARKER + node]
        return children

    placed: list[Placed] = []
    next_row = 0
    # iterative depth-first walk (a lineage can be thousands deep): rows for leaves on the
    # way down, a parent's row once its children have theirs
    for root in [r.id for r in rows if r.parent_id not in by_id]:
        stack: list[tuple[str, int, str | None, bool]] = [(root, 0, None, False)]
        rows_of: dict[str, float] = {}
        children: dict[str, list[str]] = {}
        while stack:
            node, depth, parent, done = stack.pop()
            if node.startswith(MARKER):
                rows_of[node], next_row = next_row, next_row + 1
                owner = node[len(MARKER) :]
                placed.append(Placed(node, owner, depth, rows_of[node], "dead", 0, 0, None, None,
                                     hidden=folded[owner]))  # fmt: skip
                continue
            if not done:
                children[node] = kids(node)
                if children[node]:
                    stack.append((node, depth, parent, True))
                    stack.extend((k, depth + 1, node, False) for k in reversed(children[node]))
                    continue
            below = children.pop(node)
            if below:
                row = (rows_of[below[0]] + rows_of[below[-1]]) / 2
            else:
                row, next_row = next_row, next_row + 1
            rows_of[node] = row
            r = by_id[node]
            risk, decision = marks.get(node, (None, None))
            placed.append(
                Placed(node, r.parent_id, depth, row, r.status.value, r.score.resolved,
                       r.score.attempted, risk, decision)
            )  # fmt: skip
    placed.sort(key=lambda p: (p.depth, p.row))
    depth = max((p.depth for p in placed), default=0)
    return Layout(
        placed,
        width=2 * MARGIN + depth * COLUMN + 120,
        height=2 * MARGIN + max(next_row - 1, 0) * ROW,
        total=len(rows),
        folded=len(folded),
    )


def colour(score: float | None) -> str:
    """Red through yellow to green by score; grey when unscored."""
    if score is None:
        return "#b8b8b8"
    low, mid, high = (215, 48, 39), (254, 224, 139), (26, 152, 80)
    a, b, t = (low, mid, score * 2) if score < 0.5 else (mid, high, score * 2 - 1)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def svg(tree: Layout, *, href: str = "/nodes/", open_href: str = "?open=") -> str:
    """The tree as one SVG element: one path for every edge, one link per node."""
    where = {p.id: p for p in tree.placed}
    edges = []
    for p in tree.placed:
        parent = where.get(p.parent or "")
        if parent is not None:
            mid = parent.x + COLUMN / 2
            edges.append(f"M{parent.x:.0f} {parent.y:.1f}H{mid:.0f}V{p.y:.1f}H{p.x:.0f}")
    parts = [
        f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {tree.width} {tree.height}" width="{tree.width}" height="{tree.height}" '
        f'data-total="{tree.total}">',
        f'<path class="edges" d="{"".join(edges)}"/>',
    ]
    for p in tree.placed:
        if p.status == "dead":
            parts.append(
                f'<a class="marker" href="{escape(open_href + (p.parent or ""))}">'
                f'<rect x="{p.x - 4:.0f}" y="{p.y - 4:.1f}" width="8" height="8"/>'
                f'<text x="{p.x + 8:.0f}" y="{p.y + 4:.1f}">+{p.hidden} dead</text>'
                f"<title>{p.hidden} nodes in dead branches: open them</title></a>"
            )
            continue
        score = "unscored" if p.score is None else f"{p.resolved}/{p.attempted}"
        title = f"{p.id[:8]} {p.status} {score}" + (f" risk {p.risk}" if p.risk else "")
        classes = f"node st-{p.status}" + (f" risk-{p.risk}" if p.risk else "")
        classes += f" dec-{p.decision}" if p.decision else ""
        parts.append(
            f'<a class="{classes}" href="{escape(href + p.id)}" data-id="{p.id}">'
            f'<circle cx="{p.x:.0f}" cy="{p.y:.1f}" r="{RADIUS}" fill="{colour(p.score)}"/>'
            f'<text x="{p.x + 8:.0f}" y="{p.y + 4:.1f}">{p.id[:8]}</text>'
            f"<title>{escape(title)}</title></a>"
        )
    parts.append("</svg>")
    return "".join(parts)
