"""The search policies by name: what a run's config, `dgm simulate` and `dgm status` name."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from dgm.search.core import Search, Stage
from dgm.search.generations import Generations
from dgm.search.hgm import CMP
from dgm.search.novelty import Novelty
from dgm.search.parents import Best, ParentWeights, RandomSelector, ScoreChildProp, ScoreProp
from dgm.search.population import Population

PARENT_SELECTORS: dict[str, type[ParentWeights]] = {
    s.name: s for s in (ScoreChildProp, ScoreProp, RandomSelector, Best, Novelty)
}
NAMES = [CMP.name, *PARENT_SELECTORS]


def make_search(
    name: str,
    params: dict[str, Any],
    population: Population,
    stages: Sequence[Stage],
    *,
    mode: Literal["async", "generational"] = "async",
    generation_size: int = 2,
    workers: int | None = None,
    rng: random.Random | None = None,
    evaluation_budget: int | None = None,
) -> Search:
    """The named policy over `population`; ValueError naming what is wrong with the name, the
    parameters or the mode."""
    if name not in NAMES:
        raise ValueError(f"unknown selector {name!r}; choose one of {', '.join(sorted(NAMES))}")
    try:
        if name == CMP.name:
            if mode != "async":
                raise ValueError(
                    "selector cmp decides between expanding and evaluating itself: "
                    "use scheduler.mode async"
                )
            return CMP(
                population, stages, **params, workers=workers, rng=rng,
                evaluation_budget=evaluation_budget,
            )  # fmt: skip
        selector = PARENT_SELECTORS[name](**params)
    except TypeError as error:
        raise ValueError(f"selector {name}: {error}") from error
    return Generations(
        population, stages, selector, mode=mode, generation_size=generation_size, rng=rng,
        evaluation_budget=evaluation_budget,
    )  # fmt: skip


def answer_of(name: str, params: dict[str, Any], population: Population) -> tuple[str | None, str]:
    """The answer the named policy gives for `population` (for `dgm status` and exports), and
    its rule in words."""
    search = make_search(name, params, population, [])
    return search.answer(), search.answer_rule
