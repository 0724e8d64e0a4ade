"""The interestingness judge (OMNI-style) and code embeddings: real model calls through the
gateway to the scripted FM server, the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from archive import Archive
from archive.records import Origin
from dgm.embeddings import MiniLM, code_vector
from dgm.gateway import Gateway, GatewaySettings, Upstream
from dgm.judge import Verdict, judge
from tests.conftest import write_files
from tests.scripted_fm import Reply, ScriptedFM

PARSER = "def parse(text):\n    return [line.split(',') for line in text.splitlines()]\n"


@pytest.fixture
def archive(tmp_path):
    with Archive.init(tmp_path / "archive") as archive:
        yield archive


def agent(archive: Archive, tmp_path, name: str, files: dict[str, str], **options) -> str:
    folder = write_files(tmp_path / name, files)
    return archive.add_node(folder, origin=Origin.HUMAN, **options).id


def test_the_judge_sees_the_change_beside_its_neighbours_and_its_verdict_is_kept(archive, tmp_path):
    parent = agent(archive, tmp_path, "p", {"agent.py": PARSER}, proposal="A CSV parser")
    patch = archive.blobs.put(b"+def parse(text, sep=','):\n")
    child = agent(
        archive, tmp_path, "c", {"agent.py": PARSER + "# sep\n"}, parent=parent,
        proposal="Let the parser take any separator", meta={"patch_blob": patch},
    )  # fmt: skip
    answer = {"interesting": False, "reason": "the parent already splits lines"}
    with ScriptedFM(Reply(json.dumps(answer)), Reply("Yes, I think so.")) as fm:
        upstream = Upstream(base_url=fm.openai_base_url, api_key="sk-judge")
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:
            verdict = judge(archive, gateway, child, [parent], model="judge-model")
            unusable = judge(archive, gateway, child, [parent], model="judge-model")
    assert verdict == Verdict(False, "the parent already splits lines") and unusable is None
    [event] = [e for e in archive.events() if e.kind == "judged"]
    assert event.node_id == child and event.payload == {**answer, "model": "judge-model"}
    prompt = fm.requests[0].body["messages"][-1]["content"]
    assert "Let the parser take any separator" in prompt and "sep=','" in prompt
    assert "- A CSV parser" in prompt
    assert fm.requests[0].body["response_format"]["json_schema"]["schema"]["required"] == [
        "interesting", "reason"
    ]  # fmt: skip


class Counting:
    """The real model, counting what it is asked to embed."""

    def __init__(self, model: MiniLM):
        self.inner, self.model, self.calls = model, model.model, 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return self.inner.embed(texts)


def test_code_embeddings_place_similar_agents_near_and_are_kept_by_tree(archive, tmp_path):
    embedder = Counting(MiniLM())
    a = agent(archive, tmp_path, "a", {"agent.py": PARSER, "README.md": "# CSV tools\n"})
    b = agent(archive, tmp_path, "b", {"agent.py": PARSER + "\n# handles quoted fields\n"})
    c = agent(
        archive, tmp_path, "c",
        {"README.md": "# Ode to autumn\nSeason of mists and mellow fruitfulness.\n"},
    )  # fmt: skip
    va, vb, vc = (code_vector(archive, n, embedder) for n in (a, b, c))
    assert embedder.calls == 3 and va.shape == (384,)
    assert np.linalg.norm(va) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(va - vb) < np.linalg.norm(va - vc)
    same_tree = agent(archive, tmp_path, "a2", {"agent.py": PARSER, "README.md": "# CSV tools\n"})
    assert np.array_equal(code_vector(archive, same_tree, embedder), va)
    assert embedder.calls == 3  # kept in the archive by tree: nothing embedded again
