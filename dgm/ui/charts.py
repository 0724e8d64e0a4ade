"""Small line charts drawn on the server as SVG: a run's scores and spend as it goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD = 420, 180, 36
COLOURS = ["#1a9850", "#4575b4", "#d73027"]


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]


def line_chart(
    title: str, series: Sequence[Series], *, x_label: str, y_max: float | None = None
) -> str:
    """One chart: axes with their extremes labelled, a polyline per series, a legend."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text class="title" x="{PAD}" y="14">{escape(title)}</text>',
    ]
    if not xs:
        parts.append(f'<text x="{PAD}" y="{HEIGHT / 2:.0f}">nothing yet</text></svg>')
        return "".join(parts)
    x0, x1 = min(xs), max(xs)
    y1 = y_max if y_max is not None else max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > 0 else 1)

    def at(x: float, y: float) -> str:
        px = PAD + (x - x0) / (x1 - x0) * (WIDTH - 2 * PAD)
        py = HEIGHT - PAD - y / y1 * (HEIGHT - 2 * PAD)
        return f"{px:.1f},{py:.1f}"

    bottom, right = HEIGHT - PAD, WIDTH - PAD
    parts.append(f'<path class="axis" d="M{PAD} {PAD}V{bottom}H{right}"/>')
    parts.append(
        f'<text class="tick" x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{_number(y1)}</text>'
    )
    parts.append(f'<text class="tick" x="{PAD - 4}" y="{bottom}" text-anchor="end">0</text>')
    parts.append(f'<text class="tick" x="{PAD}" y="{bottom + 14}">{_number(x0)}</text>')
    parts.append(
        f'<text class="tick" x="{right}" y="{bottom + 14}" text-anchor="end">'
        f"{_number(x1)} {escape(x_label)}</text>"
    )
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(at(x, y) for x, y in s.points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts.append(
            f'<text class="legend" x="{right - 90 * (len(series) - i)}" y="14" '
            f'fill="{colour}">{escape(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2f}"
