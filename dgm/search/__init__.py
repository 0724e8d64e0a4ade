"""The search: which unit a run starts next, what it makes of each result, and its answer.

No I/O here: the engine, `dgm simulate` and the tests drive a policy the same way, through
`ask()` (the next unit, or None), `tell(unit, outcome)` (what the unit brought back; the
members decided because of it) and `answer()` (the node the run reports). A policy is made by
name (`make_search`) over a `Population` and the run's `Stage`s:

- DGM's parent-weight selectors (`score_child_prop`, `score_prop`, `random`, `best`,
  `novelty`) under `Generations`: staged evaluation decides every evaluation, a selector picks
  the parents, async or in generations;
- HGM's `cmp` (`CMP`): clade metaproductivity, one task at a time.
"""

from dgm.search.core import Search, Stage
from dgm.search.population import Member, Population
from dgm.search.registry import NAMES, answer_of, make_search
from dgm.search.units import Decision, Evaluated, Expanded, Outcome, Policy, Unit

__all__ = [
    "NAMES", "Decision", "Evaluated", "Expanded", "Member", "Outcome", "Policy", "Population",
    "Search",
    "Stage", "Unit", "answer_of", "make_search",
]  # fmt: skip
