"""evaluate(node, task): the seed agent on a built-in exercise, graded apart, cached by tree."""

from __future__ import annotations

import pytest

from archive.records import EvalStatus, Origin
from benchmarks.polyglot import PolyglotBenchmark
from dgm.evaluate import evaluate
from dgm.expand import SEED_AGENT
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.docker_sandbox import DockerSandbox
from tests.scripted_fm import Reply, ScriptedFM, ToolCall

SOLVE = {
    "command": "create",
    "path": "shout.py",
    "file_text": "def shout(t):\n    return t.upper() + '!'\n",
}


@pytest.fixture
def run_evaluations(archive, docker_client, base_image):
    def sandbox(settings):
        return DockerSandbox(base_image, settings, client=docker_client)

    bench = PolyglotBenchmark(sandbox)
    with ScriptedFM() as fm:
        upstream = Upstream(base_url=fm.openai_base_url, api_key="sk-run")
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:

            def run(node_id, task="python/shout", **options):
                return evaluate(
                    node_id, bench, task, archive=archive, gateway=gateway,
                    new_sandbox=sandbox, model="gpt-4o", max_steps=5, **options,
                )  # fmt: skip

            yield fm, run


def test_a_solved_task_is_resolved_and_the_same_tree_is_not_run_again(archive, run_evaluations):
    fm, run = run_evaluations
    seed = archive.add_node(SEED_AGENT, origin=Origin.SEED)
    fm.push(
        Reply("", [ToolCall("editor", SOLVE)], input_tokens=1000, output_tokens=50), Reply("Done.")
    )
    first = run(seed.id)
    assert (first.status, first.attempt, first.model) == (EvalStatus.RESOLVED, 1, "gpt-4o")
    assert first.cost_usd == pytest.approx((1100 * 2.5 + 70 * 10.0) / 1e6)  # two model turns
    assert b"+    return t.upper()" in archive.blobs.get(first.patch_blob)
    assert b"3 passed" in archive.blobs.get(first.log_blob)
    # the same tree under another node: recorded from the cache, no model call
    twin = archive.add_node(SEED_AGENT, origin=Origin.HUMAN, proposal="same code")
    calls = len(fm.requests)
    reused = run(twin.id)
    assert (reused.status, reused.cost_usd, reused.patch_blob) == (
        EvalStatus.RESOLVED,
        0.0,
        first.patch_blob,
    )
    assert run(seed.id) == first and len(fm.requests) == calls
    # asked for another attempt, it runs again: the agent gives up this time
    fm.push(Reply("I cannot do this."))
    again = run(seed.id, again=True)
    assert (again.status, again.attempt) == (EvalStatus.EMPTY, 2)
    assert archive.scores(seed.id).overall.attempted == 2
