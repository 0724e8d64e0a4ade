"""What the pages show of an agent's work: a diff per file, highlighted by Pygments (its
trajectory as a conversation is `dgm.trajectories`'). Everything here came out of a sandbox:
it is parsed defensively, cut to size and escaped (Pygments and the templates escape;
nothing is marked safe that an agent wrote, except Pygments' own output)."""

from __future__ import annotations

from dataclasses import dataclass

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from benchmarks.patches import PatchError, parse

FILE_CHARS = 200_000  # of one file's diff shown
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


def highlight_css() -> str:
    return _FORMATTER.get_style_defs(".diff")


@dataclass(frozen=True)
class FileDiff:
    path: str
    added: int
    removed: int
    html: str
    """Pygments' highlighted markup of the file's diff."""
    cut: bool


def file_diffs(diff: str) -> list[FileDiff]:
    """A diff split by file (git's reading), each highlighted."""
    try:
        files = [(" -> ".join(f.paths), len(f.added), len(f.removed), f.text) for f in parse(diff)]
    except PatchError:  # shown whole rather than not at all
        files = [("(the whole diff)", diff.count("\n+"), diff.count("\n-"), diff)] if diff else []
    return [
        FileDiff(
            path,
            added,
            removed,
            highlight(text[:FILE_CHARS], DiffLexer(), _FORMATTER),
            len(text) > FILE_CHARS,
        )
        for path, added, removed, text in files
    ]
