"""What a run found: agents in a git store, their metadata in SQL, artefacts as blobs.

This layer knows nothing of foundation models or Docker.
"""

from archive.archive import Archive, config_hash
from archive.errors import ArchiveError
from archive.lineage import Lineage
from archive.records import (
    CheckReport,
    EvalStatus,
    Evaluation,
    EvaluationResult,
    Event,
    FMCall,
    Node,
    NodeScores,
    NodeStatus,
    NodeSummary,
    Origin,
    Review,
    Run,
    Score,
    jsonable,
)

__all__ = [
    "Archive",
    "ArchiveError",
    "CheckReport",
    "EvalStatus",
    "Evaluation",
    "EvaluationResult",
    "Event",
    "FMCall",
    "Lineage",
    "Node",
    "NodeScores",
    "NodeStatus",
    "NodeSummary",
    "Origin",
    "Review",
    "Run",
    "Score",
    "config_hash",
    "jsonable",
]
