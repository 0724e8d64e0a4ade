"""The safety review of every self-modification and the gates it feeds.

`Reviewer`s read a node's change to its parent (`change.py`): the static reviewer (rules for
self-modifying agents plus bandit's generic checks, counting only what the parent did not
already do) and, optionally, the FM reviewer; the result (risk and findings) is stored per
node. `gates.py` turns a risk into pass / wait / reject at each gate (`admit`, `promote`,
`export`) as the run's policy says; a person's decision answers what waits
(`service.decide`). Every review, decision, gate passage and export goes into the archive's
audit log.
"""

from dgm.review.findings import Finding, Result, Reviewer, Risk
from dgm.review.gates import GATES, Gate, GatePolicy, ReviewPolicy, Verdict

__all__ = [
    "GATES",
    "Finding",
    "Gate",
    "GatePolicy",
    "Result",
    "ReviewPolicy",
    "Reviewer",
    "Risk",
    "Verdict",
]
