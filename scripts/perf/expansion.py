"""Wall time of one self-modification with the scripted FM server, in Docker sandboxes.

    .venv/bin/python scripts/perf/expansion.py [--runs 5]

Each expansion: diagnosis through the gateway, the seed agent rewriting its own code in a
sandbox (three model turns: edit, run its tests, finish), the child's tests in a fresh
sandbox, the commit. The scripted server answers at once, so this is dgm's own cost.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from archive import Archive
from archive.records import EvalStatus, EvaluationResult, Origin
from dgm.expand import SEED_AGENT, ExpansionSettings, expand
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.docker_sandbox import DockerSandbox, connect
from sandbox.images import ensure_base_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.scripted_fm import Reply, ScriptedFM, ToolCall

DIAGNOSIS = {
    "improvement_proposal": "Ask for a correct change",
    "problem_description": "The prompt asks for the smallest change; ask for a correct one.",
}
REWORD = {
    "command": "str_replace",
    "path": "coding_agent.py",
    "old_str": "Make the\nsmallest change",
    "new_str": "Make the\nsmallest correct change",
}


class Tasks:
    def statement(self, benchmark: str, task: str) -> str:
        return f"Task {task} of {benchmark}."

    def hidden_tests(self, benchmark: str, task: str) -> str:
        return "def test_it():\n    assert solved()\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    client = connect()
    image = ensure_base_image(client)
    times = []
    with tempfile.TemporaryDirectory() as tmp, ScriptedFM() as fm:
        archive = Archive.init(Path(tmp) / "archive")
        seed = archive.add_node(SEED_AGENT, origin=Origin.SEED, proposal="seed")
        failed = EvaluationResult("toy", "t1", EvalStatus.UNRESOLVED, trajectory=b"{}", log=b"F")
        archive.record_evaluations(seed.id, [failed])
        upstream = Upstream(base_url=fm.openai_base_url, api_key="k")
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:
            for _ in range(args.runs):
                fm.push(
                    Reply(json.dumps(DIAGNOSIS)),
                    Reply("", [ToolCall("editor", REWORD)]),
                    Reply("", [ToolCall("bash", {"command": "python3 -m pytest -q tests"})]),
                    Reply("Done."),
                )
                start = time.perf_counter()
                result = expand(
                    seed.id,
                    archive=archive,
                    gateway=gateway,
                    new_sandbox=lambda s: DockerSandbox(image, s, client=client),
                    tasks=Tasks(),
                    settings=ExpansionSettings(),
                    rng=random.Random(0),
                )
                times.append(time.perf_counter() - start)
                assert result.child_id and not result.reason, result.reason
        archive.close()
    print(f"expansion: {args.runs} runs, scripted FM server, Docker sandboxes, image {image}")
    print(
        f"one expansion          median {statistics.median(times):6.2f} s   "
        f"min {min(times):.2f} s   max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
