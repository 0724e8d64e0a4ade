"""Units on a Ray cluster: a real two-node cluster on this machine, a real PostgreSQL archive,
real Docker, and the scripted FM; the second node is killed while it runs a unit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

from archive import Archive
from archive.events import EventKind
from dgm.gateway import Budget, GatewaySettings, Spend
from tests.conftest import DGM, run_dgm
from tests.scripted_fm import Reply, ScriptedFM
from tests.test_run import respond, stalled_fm, until_agents_wait, write_config

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def driver(ray_cluster):
    """This process connected to the cluster, as `dgm run` connects to it."""
    ray = pytest.importorskip("ray")
    ray.init(address=ray_cluster.address, namespace=f"test-{uuid.uuid4().hex}", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_one_budget_holds_across_the_gateways_of_every_node(driver):
    """Each node's gateway reserves against the one desk on the head: two calls in flight on
    one node leave no room for a third on the other."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from dgm.executors.ray_cluster import NodeGateway, RunDesk

    release = threading.Event()

    def stalled(request):
        release.wait(60)
        return Reply("ok", input_tokens=500, output_tokens=500)

    with ScriptedFM(responder=stalled) as fm:
        desk = RunDesk.remote("run", Budget(tokens=5000), Spend())
        env = {"OPENAI_API_KEY": "sk-cluster", "OPENAI_BASE_URL": fm.openai_base_url}
        nodes = [n["NodeID"] for n in driver.nodes() if n["Alive"]]
        assert len(nodes) == 2
        gateways = [
            NodeGateway.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(GatewaySettings(), env, desk, "run", "session")
            for node in nodes
        ]
        sockets = driver.get([g.socket_path.remote() for g in gateways])
        tokens = [
            driver.get(g.open_unit.remote(f"unit {i}", None)).token for i, g in enumerate(gateways)
        ]

        def call(i: int) -> int:  # about 2,100 tokens reserved each: two fit in 5,000
            transport = httpx.HTTPTransport(uds=sockets[i % 2])
            with httpx.Client(transport=transport, timeout=60) as client:
                answer = client.post(
                    "http://gateway/v1/chat/completions",
                    headers={"authorization": f"Bearer {tokens[i % 2]}"},
                    json={"model": "gpt-4o", "messages": HELLO, "max_tokens": 1000},
                )
            return answer.status_code

        with ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(call, i) for i in range(4)]
            for _ in range(300):  # two reach the FM, two are refused, on either node
                if len(fm.requests) == 2 and sum(c.done() for c in calls) == 2:
                    break
                time.sleep(0.1)
            release.set()
            assert sorted(c.result() for c in calls) == [200, 200, 402, 402]
        assert driver.get(desk.short_of.remote()) is None  # refused for what was held
        assert call(0) == 200  # 3,000 spent now: on one node
        assert call(1) == 402  # and the other knows
        assert driver.get(desk.short_of.remote()) == "tokens"
        for gateway in gateways:
            driver.get(gateway.close.remote())
        spent, held = driver.get(desk.spent.remote())
        recorded = driver.get(desk.finish.remote())
    assert (spent.tokens, held) == (3000, Spend())
    assert sum(c.input_tokens + c.output_tokens for c in recorded) == 3000
    assert Counter(c.status for c in recorded) == {"ok": 3, "budget-exceeded": 3}


def status(archive) -> dict:
    return json.loads(run_dgm("status", "--json", archive=archive).stdout)


def until_placed(archive, count: int) -> list[dict]:
    """The units in flight, once `count` of them say where they run."""
    for _ in range(200):
        units = [u for u in status(archive)["units"] if u["machine"]]
        if len(units) >= count:
            return units
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} units were placed: {status(archive)['units']}")


def containers(*labels: str) -> list[str]:
    filters = [f"--filter=label={label}" for label in labels]
    found = subprocess.run(["docker", "ps", "-aq", *filters], capture_output=True, text=True)
    return found.stdout.split()


def test_a_run_spreads_over_two_nodes_and_survives_losing_one(
    ray_cluster, postgres, base_image, tmp_path
):
    archive = tmp_path / "archive"
    Archive.init(archive, database_url=postgres.create_database()).close()
    [worker] = ray_cluster.worker_nodes
    try:
        lose_a_node_mid_run(ray_cluster, worker, archive, tmp_path)
    finally:  # the next test finds two nodes again
        if worker not in ray_cluster.worker_nodes:
            ray_cluster.add_node(num_cpus=1, resources={"docker": 1})
            ray_cluster.wait_for_nodes()


def lose_a_node_mid_run(ray_cluster, worker, archive, tmp_path) -> None:
    config = write_config(tmp_path, executor=f"{{name: ray, address: '{ray_cluster.address}'}}")
    with stalled_fm() as (fm, release):
        env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
        run = subprocess.Popen([DGM, "run", str(config)], env=env, stderr=subprocess.PIPE)
        until_agents_wait(fm)  # one agent on each node, waiting for the FM
        units = until_placed(archive, 2)
        assert len({u["machine"] for u in units}) == 2, units  # one unit on each node
        shown = run_dgm("status", archive=archive).stdout
        assert all(f"on {u['machine']}" in shown for u in units), shown

        second = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert second.returncode == 2 and "is running on" in second.stderr, second.stderr

        # the second node dies mid-unit; its sandbox is left running on this machine's Docker
        with Archive.open(archive) as arc:
            [run_row] = arc.runs()
        lost = containers(f"dgm.run={run_row.id}", f"dgm.node={worker.node_id}")
        assert len(lost) == 1
        ray_cluster.remove_node(worker, allow_graceful=False)
        release.set()
        assert run.wait(timeout=900) == 0, run.stderr.read().decode()
        answered = len(fm.requests)

    assert run_dgm("fsck", archive=archive).returncode == 0
    with Archive.open(archive) as arc:
        [run_row] = arc.runs()
        assert (run_row.status, run_row.stop_reason) == ("finished", "budget expansions spent")
        # the lost unit ran again on the head: placed there after, finished once
        placed = [e.payload for e in arc.events_of(run_row.id, EventKind.UNIT_PLACED)]
        assert len({p["machine"] for p in placed}) == 2
        [lost_unit] = [p["unit"] for p in placed if worker.node_id[:8] in p["machine"]]
        assert lost_unit.startswith("evaluate")
        later = [p["machine"] for p in placed if p["unit"] == lost_unit]
        assert len(later) == 2 and worker.node_id[:8] not in later[1]
        finished = arc.events_of(run_row.id, EventKind.UNIT_FINISHED)
        assert [e.payload["unit"] for e in finished].count(lost_unit) == 1
        assert not arc.events_of(run_row.id, EventKind.UNIT_FAILED)
        # one counted result per node and task: nothing of the lost attempt was recorded
        for node in arc.nodes():
            counted = Counter(e.task for e in arc.evaluations(node.id) if e.status.counted)
            assert set(counted.values()) <= {1}, (node.id, counted)
        # every call the FM answered was metered once, but the lost node's, whose answer
        # never arrived; the run's spend is the sum of its calls
        calls = arc.fm_calls(run_id=run_row.id)
        assert answered - 1 <= len(calls) <= answered
        tokens, usd = arc.fm_spend(run_row.id)
        assert tokens == sum(c.input_tokens + c.output_tokens for c in calls) > 0
        assert usd == sum(c.cost_usd for c in calls)
        assert status(archive)["spend"]["tokens"] == tokens
    # the dead node's sandbox was removed by the unit that ran again; no other is left
    assert lost[0] not in containers()
    assert containers(f"dgm.run={run_row.id}") == []


def test_a_cluster_that_does_not_answer_is_refused_before_the_run_is_touched(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    config = write_config(tmp_path, executor=f"{{name: ray, address: '{address}'}}")
    refused = subprocess.run([DGM, "run", str(config)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"dgm: error: no Ray cluster answers at {address}: start its head there (ray start "
        "--head --port=PORT --resources='{\"docker\": N}') or set executor.address"
    ]
    assert not (tmp_path / "archive").exists()


def test_sigterm_ends_a_cluster_run_at_once_and_it_continues(ray_cluster, base_image, tmp_path):
    config = write_config(tmp_path, executor=f"{{name: ray, address: '{ray_cluster.address}'}}")
    archive = tmp_path / "archive"
    with stalled_fm() as (fm, release):
        env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
        run = subprocess.Popen([DGM, "run", str(config)], env=env, stderr=subprocess.PIPE)
        until_agents_wait(fm)  # a unit on each node
        run.send_signal(signal.SIGTERM)
        # it does not wait for the stalled FM calls
        assert run.wait(timeout=60) == 0, run.stderr.read().decode()
        release.set()
    with Archive.open(archive) as arc:
        [run_row] = arc.runs()
        assert (run_row.status, run_row.stop_reason) == ("stopped", "terminated")
        [seed] = arc.nodes()
        assert arc.evaluations(seed.id) == []  # the units given up left nothing
    for _ in range(100):  # each cancelled unit closes its sandbox as it unwinds
        if not containers(f"dgm.run={run_row.id}"):
            break
        time.sleep(0.2)
    assert containers(f"dgm.run={run_row.id}") == []
    with ScriptedFM(responder=respond) as fm:
        env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
        again = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stderr.decode()
    with Archive.open(archive) as arc:
        evaluations = [e for n in arc.nodes() for e in arc.evaluations(n.id)]
        assert {e.attempt for e in evaluations} == {1} and len(evaluations) == 6
