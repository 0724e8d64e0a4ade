"""evaluate(node, task): the seed agent on a built-in exercise, graded apart, cached by tree,
model and the agent's limits; an agent cut by its deadline is a counted result."""

from __future__ import annotations

import pytest

from archive.records import EvalStatus, Origin
from benchmarks.agent_run import AgentLimits
from benchmarks.polyglot import PolyglotBenchmark
from dgm.evaluate import evaluate
from dgm.expand import SEED_AGENT
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.docker_sandbox import DockerSandbox
from tests.conftest import run_dgm, write_files
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

            def run(node_id, task="python/shout", limits=AgentLimits(max_steps=5), **options):
                return evaluate(
                    node_id, bench, task, archive=archive, gateway=gateway,
                    new_sandbox=sandbox, model="gpt-4o", limits=limits, **options,
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
    # under other limits the cached result is not used: the agent runs again
    fm.push(Reply("", [ToolCall("editor", SOLVE)]), Reply("Done."))
    longer = run(twin.id, limits=AgentLimits(max_steps=6))
    assert longer.cost_usd > 0 and longer.limits == "max_steps=6 timeout_s=1800"


CUT_SHORT = """
import pathlib, sys, time
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
{how}
"""


@pytest.mark.parametrize(
    ("how", "ran_out"),
    [("time.sleep(600)", "time"), ("x = bytearray(4 << 30)", "memory")],  # over 1 GiB
)
def test_an_agent_cut_short_is_a_counted_timeout_shown_by_dgm_show(
    archive, run_evaluations, tmp_path, how, ran_out
):
    """A timeout or OOM of the agent, with nothing written, is the agent's `timeout`."""
    _, run = run_evaluations
    folder = write_files(tmp_path / "agent", {"coding_agent.py": CUT_SHORT.format(how=how)})
    node = archive.add_node(folder, origin=Origin.HUMAN, proposal="cut short")
    result = run(node.id, limits=AgentLimits(timeout_s=5))
    log = archive.blobs.get(result.log_blob).decode()
    assert result.status is EvalStatus.TIMEOUT and result.status.counted, log
    assert log.startswith(f"the agent ran out of {ran_out}")
    assert archive.scores(node.id).searched == (0, 1)
    shown = run_dgm("show", node.id, "--archive", str(archive.root)).stdout
    assert "evaluations 1: 1 timeout" in shown and "(0/1; 95% 0.00-0.79)" in shown
