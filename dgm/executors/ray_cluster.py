"""Units as Ray tasks on a cluster's nodes.

- Each unit is one task holding `docker` slots (a custom resource: a node started with
  `--resources='{"docker": N}'` runs N at once), CPUs and memory; the agent's code goes with it
  as a tar and what it made comes back as the task's result, which the scheduler, on the
  head, records: it is the archive's only writer.
- Each node with `docker` slots runs the run's FM gateway in an actor (`NodeGateway`): the
  sandboxes there mount its Unix socket, and the API keys (from the head's environment) stay
  in that actor. Every gateway reserves and settles calls against one `RunDesk` actor on the
  head, which holds the run's budget and the calls the head records.
- A node lost mid-unit: Ray runs the task again elsewhere (`executor.retries`); nothing of the
  lost attempt was recorded, though its FM calls were metered. The containers it left are
  removed by the next unit or gateway that starts on that machine (they carry its node id,
  which is no longer alive), and a new session of the run removes all of an earlier one's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from archive import Archive
from archive.records import FMCall
from dgm.config import ConfigError, ExecutorConfig
from dgm.executors.mailbox import Mailbox
from dgm.fm.providers import open_providers
from dgm.gateway import Gateway, GatewaySettings, Lease, RunLedger, Spend, gateway_client
from dgm.gateway.ledger import Budget, lost, record_calls
from dgm.sandbox_pool import Abandoned
from dgm.unit_work import BenchmarkSpec, Place, Result, Work, open_spec, perform
from sandbox.base import SandboxError

try:
    import ray
    from ray.exceptions import GetTimeoutError, TaskCancelledError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as error:  # pragma: no cover - the extra is not installed
    raise ConfigError(
        "executor ray needs Ray: pip install 'dgm[ray]' on every machine of the cluster"
    ) from error

log = logging.getLogger(__name__)
# the environment a node's gateway reads its providers from (the head's)
PROVIDER_VARIABLES = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
)  # fmt: skip
NODES_EVERY_S = 2.0  # how often the head looks for nodes that joined or died
PUMP_EVERY_S = 0.25  # how often the head records the calls the desk collected
GATEWAY_WAIT_S = 120.0  # longest a unit waits for its node's gateway (the embedded model loads)


def check_address(address: str) -> None:
    """ConfigError unless something answers at the cluster's address (Ray itself would wait
    minutes for a head that is not there)."""
    if address == "auto":  # ray.init says at once when this machine runs no cluster
        return
    if address.startswith("ray://"):  # a Ray Client driver has no node for the run's desk
        raise ConfigError(
            f"executor.address {address}: Ray Client is not supported; run dgm on a machine "
            "of the cluster and give its head's host:port"
        )
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError):
        raise ConfigError(
            f"no Ray cluster answers at {address}: start its head there (ray start --head "
            "--port=PORT --resources='{\"docker\": N}') or set executor.address"
        ) from None


def gateway_name(run_id: str, node_id: str) -> str:
    return f"dgm-gateway-{run_id}-{node_id}"


@ray.remote(num_cpus=0)
class RunDesk:
    """On the head: the run's budget, spend and calls in flight for every gateway, the calls
    to record, and where each unit started."""

    def __init__(self, run_id: str, budget: Budget, spent: Spend):
        self._calls: Mailbox[FMCall] = Mailbox()  # put by the ledger's writer thread
        self._placed: Mailbox[tuple[str, str]] = Mailbox()
        self._ledger = RunLedger(self, run_id=run_id, budget=budget, spent=spent)

    def record_fm_call(self, call: FMCall) -> None:  # the ledger's sink
        self._calls.put(call)

    def reserve(self, call: Spend) -> str | None:
        return self._ledger.reserve(call)

    def settle(self, call: FMCall, held: Spend) -> None:
        self._ledger.settle(call, held)

    def short_of(self) -> str | None:
        return self._ledger.short_of()

    def spent(self) -> tuple[Spend, Spend]:
        return self._ledger.spent, self._ledger.held

    def placed(self, unit: str, node: str) -> None:
        self._placed.put((unit, node))

    def placements(self) -> list[tuple[str, str]]:
        return self._placed.take()

    def calls(self) -> list[FMCall]:
        return self._calls.take()

    def finish(self) -> list[FMCall]:
        """The calls not yet taken, once every settled one is in."""
        self._ledger.flush()
        return self.calls()


class RemoteRunAccount:
    """The run's account as a gateway on any node sees it: the head's `RunDesk`. A settle is
    sent without waiting; `flush` waits until every one sent has arrived."""

    def __init__(self, desk: Any, run_id: str):
        self.run_id = run_id
        self._desk = desk
        self._sent: list[Any] = []
        self._lock = threading.Lock()

    @property
    def spent(self) -> Spend:
        return ray.get(self._desk.spent.remote())[0]

    @property
    def held(self) -> Spend:
        return ray.get(self._desk.spent.remote())[1]

    def reserve(self, call: Spend) -> str | None:
        return ray.get(self._desk.reserve.remote(call))

    def settle(self, call: FMCall, held: Spend) -> None:
        sent = self._desk.settle.remote(call, held)
        with self._lock:
            self._sent.append(sent)

    def short_of(self) -> str | None:
        return ray.get(self._desk.short_of.remote())

    def flush(self) -> None:
        with self._lock:
            sent, self._sent = self._sent, []
        ray.get(sent)


@ray.remote(num_cpus=0, max_restarts=0)
class NodeGateway:
    """The run's FM gateway on one node, with that node's providers."""

    def __init__(
        self, settings: GatewaySettings, env: dict[str, str], desk: Any, run_id: str, session: str
    ):
        self._stack = contextlib.ExitStack()
        providers = self._stack.enter_context(open_providers(env))
        upstreams = {"openai": providers.openai, "anthropic": providers.anthropic}
        own = settings.model_copy(update=upstreams)
        self._account = RemoteRunAccount(desk, run_id)
        self._gateway = Gateway(own, run_id=run_id, run_account=self._account).start()
        self._stack.callback(self._gateway.close)
        reap_left(run_id, session)

    def socket_path(self) -> str:
        return self._gateway.socket_path

    def open_unit(self, unit_id: str, node_id: str | None) -> Lease:
        return self._gateway.open_unit(unit_id, node_id=node_id)

    def close_unit(self, lease: Lease) -> Spend:
        """What the unit spent, once each of its calls has reached the run's account."""
        spent = self._gateway.close_unit(lease)
        self._account.flush()
        return spent

    def close(self) -> None:
        self._stack.close()


@dataclass
class NodeGatewayHandle:
    """A unit's view of its node's gateway actor (the socket is on the unit's machine)."""

    actor: Any
    socket_path: str

    def open_unit(self, unit_id: str, *, node_id: str | None = None) -> Lease:
        return ray.get(self.actor.open_unit.remote(unit_id, node_id))

    def close_unit(self, lease: Lease) -> Spend:
        return ray.get(self.actor.close_unit.remote(lease))

    def client(self, model: str, lease: Lease) -> Any:
        return gateway_client(self.socket_path, model, lease)


@dataclass(frozen=True)
class Session:
    """What every unit of this session of the run needs to know."""

    run_id: str
    session: str
    benchmark: BenchmarkSpec
    desk: Any


def node_label() -> tuple[str, str]:
    """This node's id and the name it is shown by (its address and the id's start)."""
    node_id = ray.get_runtime_context().get_node_id()
    return node_id, f"{ray.util.get_node_ip_address()}/{node_id[:8]}"


def reap_left(run_id: str, session: str) -> None:
    """Remove this machine's containers of the run that no live unit owns: those of an
    earlier session of the run, and those started on a node that is no longer alive."""
    from sandbox.docker_sandbox import connect, reap

    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def left(labels: dict[str, str]) -> bool:
        return labels.get("dgm.session") != session or labels.get("dgm.node") not in alive

    with contextlib.suppress(SandboxError):  # no Docker engine: nothing of ours runs in one
        reap(connect(), run_id, left=left)


@ray.remote(max_retries=3, retry_exceptions=False)
def run_unit(work: Work, session: Session) -> Result:
    from sandbox.factory import open_sandbox

    node_id, shown = node_label()
    session.desk.placed.remote(work.unit, shown)
    name, deadline = gateway_name(session.run_id, node_id), time.monotonic() + GATEWAY_WAIT_S
    while True:  # the head starts a gateway on each node it sees (every few seconds)
        try:
            actor = ray.get_actor(name)
            socket_path = ray.get(actor.socket_path.remote())
            break
        except ValueError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no FM gateway started on node {shown}") from None
            time.sleep(0.5)
    reap_left(session.run_id, session.session)
    labels = {"dgm.node": node_id, "dgm.session": session.session}
    backend = session.benchmark.backend

    def new_sandbox(box):
        return open_sandbox(backend, box, run_id=session.run_id, unit_id=work.unit, labels=labels)

    place = Place(NodeGatewayHandle(actor, socket_path), new_sandbox, open_spec(session.benchmark))
    return perform(work, place)


class RayExecutor:
    def __init__(
        self,
        config: ExecutorConfig,
        run_id: str,
        benchmark: BenchmarkSpec,
        settings: GatewaySettings,
        archive: Archive,
        spent: Spend,
    ):
        self.config, self.run_id, self.archive = config, run_id, archive
        self._benchmark, self._settings, self._spent = benchmark, settings, spent
        self._abandoned = False
        self._in_flight: set[Any] = set()
        self._gateways: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifetime ----------------------------------------------------------------------------

    def __enter__(self) -> RayExecutor:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never report usage outward
        address = self.config.address
        try:
            ray.init(
                address=address, namespace=f"dgm-{self.run_id}", log_to_driver=False,
                configure_logging=False,
            )  # fmt: skip
        except ConnectionError as error:
            raise ConfigError(
                f"no Ray cluster at {address}: start one (ray start --head "
                "--resources='{\"docker\": 2}') or set executor.address"
            ) from error
        try:
            self._start()
        except BaseException:
            ray.shutdown()
            raise
        return self

    def _start(self) -> None:
        slots = ray.cluster_resources().get("docker", 0)
        if slots < self.config.docker_slots:
            raise ConfigError(
                f"the Ray cluster has {slots:g} docker slots and a unit needs "
                f"{self.config.docker_slots:g}: start its nodes with "
                "--resources='{\"docker\": N}' where Docker and the images are"
            )
        head = ray.get_runtime_context().get_node_id()
        on_head = NodeAffinitySchedulingStrategy(head, soft=False)
        self.desk = RunDesk.options(scheduling_strategy=on_head).remote(
            self.run_id, self._settings.budget, self._spent
        )
        self.session = Session(self.run_id, uuid.uuid4().hex, self._benchmark, self.desk)
        self._account = RemoteRunAccount(self.desk, self.run_id)
        self.gateway = Gateway(self._settings, run_id=self.run_id, run_account=self._account)
        self.gateway.start()
        self._watch_nodes()
        for target in (self._pump, self._watch):
            thread = threading.Thread(target=target, name=f"dgm-ray-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.gateway.close()  # its settles reach the desk first
            self._closing.set()
            for thread in self._threads:
                thread.join()
            for actor in self._gateways.values():
                with contextlib.suppress(Exception):  # a node that died took its gateway
                    ray.get(actor.close.remote(), timeout=30)
            lost(record_calls(self.archive, ray.get(self.desk.finish.remote())))
        finally:
            ray.shutdown()

    # -- units -------------------------------------------------------------------------------

    def perform(self, work: Work) -> Result:
        c = self.config
        options: dict[str, Any] = {
            "num_cpus": c.cpus, "resources": {"docker": c.docker_slots}, "max_retries": c.retries,
        }  # fmt: skip
        if c.memory_mb:
            options["memory"] = c.memory_mb * 2**20
        with self._lock:
            if self._abandoned:
                raise Abandoned("the run abandoned this unit")
            ref = run_unit.options(**options).remote(work, self.session)
            self._in_flight.add(ref)
        try:
            return ray.get(ref)
        except TaskCancelledError as error:
            raise Abandoned("the run abandoned this unit") from error
        finally:
            with self._lock:
                self._in_flight.discard(ref)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            refs = list(self._in_flight)
        for ref in refs:  # the unit's sandboxes close as the task unwinds
            ray.cancel(ref)

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def placements(self) -> list[tuple[str, str]]:
        return ray.get(self.desk.placements.remote())

    # -- the head's threads ------------------------------------------------------------------

    def _pump(self) -> None:
        """Record the calls every gateway settled (the head is the archive's only writer)."""
        unwritten: list[FMCall] = []
        while not self._closing.wait(PUMP_EVERY_S):
            with contextlib.suppress(GetTimeoutError):
                unwritten = record_calls(
                    self.archive, [*unwritten, *ray.get(self.desk.calls.remote(), timeout=30)]
                )
        lost(record_calls(self.archive, unwritten))

    def _watch(self) -> None:
        while not self._closing.wait(NODES_EVERY_S):
            try:
                self._watch_nodes()
            except Exception:  # the cluster may be briefly unreachable: look again later
                log.exception("could not list the Ray cluster's nodes")

    def _watch_nodes(self) -> None:
        """A gateway on each live node with docker slots; the dead ones' are forgotten."""
        env = {k: v for k in PROVIDER_VARIABLES if (v := os.environ.get(k))}
        settings = self._settings.model_copy(update={"openai": None, "anthropic": None})
        alive = {
            n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("docker")
        }
        for node_id in set(self._gateways) - alive:
            del self._gateways[node_id]
        for node_id in alive - set(self._gateways):
            self._gateways[node_id] = NodeGateway.options(
                name=gateway_name(self.run_id, node_id),
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(settings, env, self.desk, self.run_id, self.session.session)
