"""The archive: agents in git, everything known about them in SQL, large artefacts as blobs.

Every write puts files (git objects, blobs) on disk first and then commits one SQL
transaction, so a crash can leave an unreferenced object but never a row pointing at nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from archive import audit, database
from archive.audit import AuditEntry
from archive.blobs import BlobStore
from archive.errors import (
    AmbiguousNode,
    ArchiveExists,
    ArchiveNotFound,
    InvalidArgument,
    SchemaTooNew,
    UnknownNode,
)
from archive.events import EventKind, RunTasks, checked
from archive.gitstore import GitStore
from archive.lineage import Lineage
from archive.records import (
    HELD_OUT_STAGE,
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
    RunLease,
    Score,
)
from archive.schema import (
    audit_log,
    code_embeddings,
    evaluations,
    events,
    fm_usage,
    node_scores,
    nodes,
    reviews,
    run_leases,
    runs,
)

MARKER = "archive.json"
FORMAT = 1
DEFAULT_BUSY_TIMEOUT = 10.0
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def git(self) -> Path:
        return self.root / "agents.git"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def sqlite(self) -> Path:
        return self.root / "archive.db"

    def database_url(self, configured: str | None) -> str:
        return configured or f"sqlite:///{self.sqlite.resolve()}"


def _now() -> datetime:
    return datetime.now(UTC)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


class Archive:
    """An open archive. Use `Archive.init` or `Archive.open`; close it (or use `with`)."""

    def __init__(self, root: Path, engine: Engine, url: str, *, durable: bool = True):
        self.layout = Layout(Path(root))
        self.root = self.layout.root
        self._engine = engine
        self._url = url
        self.git = GitStore(self.layout.git, durable=durable)
        self.blobs = BlobStore(self.layout.blobs, durable=durable)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        *,
        database_url: str | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> Archive:
        """Create an archive. It is built in a scratch folder and moved into place whole."""
        root = Path(root)
        if (root / MARKER).exists():
            raise ArchiveExists(f"{root} already holds an archive; open it instead of re-creating")
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ArchiveExists(f"{root} exists and is not empty; choose a new or empty folder")
        root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{root.name}.init-", dir=root.parent))
        try:
            layout = Layout(scratch)
            GitStore.init(layout.git).close()
            layout.blobs.mkdir()
            url = layout.database_url(database_url)
            engine = database.create(url, busy_timeout=busy_timeout)
            try:
                with database.translated_errors(url):
                    if database_url and database.current_revision(engine) is not None:
                        raise ArchiveExists(
                            "that database already holds an archive; give an empty database"
                        )
                    database.upgrade(engine)
            finally:
                engine.dispose()
            layout.marker.write_text(
                json.dumps({"format": FORMAT, "database": database_url}, indent=2) + "\n"
            )
            if root.exists():
                root.rmdir()
            scratch.rename(root)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return cls.open(root, busy_timeout=busy_timeout)

    @classmethod
    def open(
        cls, root: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, durable: bool = True
    ) -> Archive:
        layout = Layout(Path(root))
        try:
            marker = json.loads(layout.marker.read_text())
        except FileNotFoundError:
            raise ArchiveNotFound(
                f"no archive at {layout.root}; create one with `dgm init --archive {layout.root}` "
                "or point --archive (or DGM_ARCHIVE) at an existing one"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArchiveNotFound(
                f"{layout.marker} is not readable JSON; the archive is damaged"
            ) from None
        if not isinstance(marker, dict):
            raise ArchiveNotFound(
                f"{layout.marker} is not an archive marker; the archive is damaged"
            )
        if marker.get("format", 0) > FORMAT:
            raise SchemaTooNew(
                f"{layout.root} was written by a newer dgm (format {marker['format']}); "
                "upgrade dgm to open it"
            )
        url = layout.database_url(marker.get("database"))
        engine = database.create(url, busy_timeout=busy_timeout)
        try:
            with database.translated_errors(url):
                database.ensure_schema(engine)
            return cls(layout.root, engine, url, durable=durable)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        self.git.close()
        self._engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def database_url(self) -> str:
        return self._url

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with database.translated_errors(self._url), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with (
            database.translated_errors(self._url),
            self._engine.connect().execution_options(dgm_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, name: str, config: dict[str, Any], tasks: RunTasks | None = None) -> Run:
        row = {
            "id": uuid.uuid4().hex,
            "name": name,
            "config": config,
            "config_hash": config_hash(config),
            "status": "running",
            "stop_reason": None,
            "started_at": _now(),
            "finished_at": None,
        }
        with self._write() as conn:
            conn.execute(insert(runs), row)
            started = {"name": name, **(tasks or {})}
            self._event(conn, EventKind.RUN_STARTED, started, run_id=row["id"])
        return Run(**row)

    def resume_run(self, run_id: str, tasks: RunTasks, config: dict[str, Any] | None = None) -> Run:
        """The run running again (its command was run again): its end is forgotten; its
        config is `config` from now on, when given (the same name, settings changed)."""
        values: dict[str, Any] = {"status": "running", "stop_reason": None, "finished_at": None}
        if config is not None:
            values |= {"config": config, "config_hash": config_hash(config)}
        with self._write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
            self._event(conn, EventKind.RUN_RESUMED, dict(tasks), run_id=run_id)
        return self.run(run_id)

    def finish_run(self, run_id: str, status: str, reason: str | None = None) -> None:
        with self._write() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, stop_reason=reason, finished_at=_now())
            )
            self._event(
                conn, EventKind.RUN_FINISHED, {"status": status, "reason": reason}, run_id=run_id
            )

    # -- who holds a run ---------------------------------------------------------------------

    def _clock(self, conn: Connection) -> datetime:
        """Now by the database's clock where it has one (schedulers on several machines
        compare heartbeats by one clock), else this machine's."""
        if conn.dialect.name == "postgresql":
            return conn.execute(select(func.now())).scalar_one().astimezone(UTC)
        return _now()

    def lease(self, run_id: str) -> RunLease | None:
        """The run's lease, with how long its holder has been silent; None: nobody holds it."""
        with self._read() as conn:
            row = conn.execute(select(run_leases).where(run_leases.c.run_id == run_id)).first()
            if row is None:
                return None
            silent = (self._clock(conn) - row.heartbeat_at).total_seconds()
        return RunLease(**row._mapping, silent_s=max(0.0, silent))

    def claim_lease(
        self, run_id: str, holder: str, host: str, pid: int, *, replacing: str | None
    ) -> bool:
        """Take the run's lease: a free one (`replacing` None), or the one `replacing` held
        (a dead scheduler's). False when another claimant got there first."""
        with self._write() as conn:
            now = self._clock(conn)
            row = {"holder": holder, "host": host, "pid": pid, "acquired_at": now,
                   "heartbeat_at": now}  # fmt: skip
            if replacing is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(run_leases), {"run_id": run_id, **row})
                except IntegrityError:
                    return False
                return True
            taken = conn.execute(
                update(run_leases)
                .where(run_leases.c.run_id == run_id, run_leases.c.holder == replacing)
                .values(**row)
            )
            return taken.rowcount == 1

    def renew_lease(self, run_id: str, holder: str) -> bool:
        """The holder's heartbeat; False when the lease is no longer its own."""
        with self._write() as conn:
            renewed = conn.execute(
                update(run_leases)
                .where(run_leases.c.run_id == run_id, run_leases.c.holder == holder)
                .values(heartbeat_at=self._clock(conn))
            )
            return renewed.rowcount == 1

    def drop_lease(self, run_id: str, holder: str) -> None:
        with self._write() as conn:
            conn.execute(
                delete(run_leases).where(
                    run_leases.c.run_id == run_id, run_leases.c.holder == holder
                )
            )

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.started_at)).mappings().all()
        return [Run(**row) for row in rows]

    def run(self, run_id: str) -> Run:
        with self._read() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise InvalidArgument(f"no run {run_id} in {self.root}")
        return Run(**row)

    # -- nodes -------------------------------------------------------------------------------

    def add_node(
        self,
        directory: Path,
        *,
        parent: str | None = None,
        origin: Origin = Origin.HUMAN,
        status: NodeStatus = NodeStatus.ADMITTED,
        proposal: str = "",
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Node:
        """Commit a directory as a new agent, child of `parent` (a full node id) if given."""
        parent_commit = self.node(parent).commit if parent else None
        node_id = uuid.uuid4().hex
        created = _now()
        tree = self.git.write_directory(Path(directory))
        summary = proposal.strip() or f"{origin.value} agent"
        message = f"{summary}\n\nDgm-Node: {node_id}\nDgm-Origin: {origin.value}\n"
        commit = self.git.write_commit(tree, parent_commit, message, created, author="dgm")
        self.git.set_node_ref(node_id, commit)
        node = Node(
            id=node_id,
            parent_id=parent,
            run_id=run_id,
            commit=commit,
            tree=tree,
            origin=Origin(origin),
            status=NodeStatus(status),
            proposal=proposal,
            meta=meta or {},
            created_at=created,
        )
        with self._write() as conn:
            conn.execute(
                insert(nodes),
                {
                    "id": node.id,
                    "parent_id": node.parent_id,
                    "run_id": node.run_id,
                    "commit_sha": node.commit,
                    "tree_sha": node.tree,
                    "origin": node.origin.value,
                    "status": node.status.value,
                    "proposal": node.proposal,
                    "meta": node.meta,
                    "created_at": node.created_at,
                    "resolved": 0,
                    "attempted": 0,
                    "children": 0,
                    "admitted_children": 0,
                },
            )
            if parent:
                admitted = int(node.status is NodeStatus.ADMITTED)
                conn.execute(
                    update(nodes)
                    .where(nodes.c.id == parent)
                    .values(
                        children=nodes.c.children + 1,
                        admitted_children=nodes.c.admitted_children + admitted,
                    )
                )
            self._event(
                conn,
                EventKind.NODE_ADDED,
                {"parent": parent, "origin": node.origin.value, "commit": commit},
                run_id=run_id,
                node_id=node_id,
            )
        return node

    def resolve(self, ref: str) -> str:
        """A full node id from a unique prefix of at least 4 hex characters."""
        prefix = ref.strip().lower()
        if len(prefix) < 4 or len(prefix) > 32 or not _HEX.match(prefix):
            raise UnknownNode(
                f"{ref!r} is not a node id; give at least 4 hex characters "
                "(see `dgm tree` for the ids)"
            )
        with self._read() as conn:
            found = conn.scalars(
                select(nodes.c.id).where(nodes.c.id.startswith(prefix)).limit(2)
            ).all()
        if not found:
            raise UnknownNode(f"no node {ref!r} in {self.root}; see `dgm tree` for the ids")
        if len(found) > 1:
            raise AmbiguousNode(
                f"node id {ref!r} is ambiguous (matches {found[0][:12]}, {found[1][:12]}, ...); "
                "give more characters"
            )
        return found[0]

    def node(self, node_id: str) -> Node:
        with self._read() as conn:
            row = conn.execute(select(nodes).where(nodes.c.id == node_id)).mappings().first()
        if row is None:
            raise UnknownNode(f"no node {node_id!r} in {self.root}; see `dgm tree` for the ids")
        return _node(row)

    def nodes(self, ids: Sequence[str] | None = None) -> list[Node]:
        query = select(nodes).order_by(nodes.c.created_at, nodes.c.id)
        if ids is not None:
            query = query.where(nodes.c.id.in_(ids))
        with self._read() as conn:
            return [_node(row) for row in conn.execute(query).mappings()]

    def set_status(self, node_id: str, status: NodeStatus, reason: str = "") -> None:
        status = NodeStatus(status)
        with self._write() as conn:
            row = conn.execute(
                select(nodes.c.parent_id, nodes.c.status).where(nodes.c.id == node_id)
            ).first()
            if row is None:
                raise UnknownNode(f"no node {node_id!r} in {self.root}")
            conn.execute(update(nodes).where(nodes.c.id == node_id).values(status=status.value))
            change = int(status is NodeStatus.ADMITTED) - int(row.status == NodeStatus.ADMITTED)
            if row.parent_id and change:
                conn.execute(
                    update(nodes)
                    .where(nodes.c.id == row.parent_id)
                    .values(admitted_children=nodes.c.admitted_children + change)
                )
            self._event(
                conn,
                EventKind.STATUS_CHANGED,
                {"status": status.value, "reason": reason},
                node_id=node_id,
            )

    def summaries(self) -> list[NodeSummary]:
        """Every node with its score and child counts: what `dgm tree` reads.

        One scan of the node table, whose running totals make this cheap at 10,000 nodes; the
        held-out results (few nodes have any) are taken from the per-stage scores.
        """
        held = (
            select(
                node_scores.c.node_id,
                func.sum(node_scores.c.resolved).label("resolved"),
                func.sum(node_scores.c.attempted).label("attempted"),
            )
            .where(node_scores.c.stage == HELD_OUT_STAGE)
            .group_by(node_scores.c.node_id)
            .subquery()
        )
        query = (
            select(
                nodes.c.id,
                nodes.c.parent_id,
                nodes.c.origin,
                nodes.c.status,
                nodes.c.resolved,
                nodes.c.attempted,
                nodes.c.children,
                nodes.c.admitted_children,
                func.coalesce(held.c.resolved, 0),
                func.coalesce(held.c.attempted, 0),
            )
            .outerjoin(held, held.c.node_id == nodes.c.id)
            .order_by(nodes.c.created_at, nodes.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        origins, statuses = {o.value: o for o in Origin}, {s.value: s for s in NodeStatus}
        # tuple.__new__ skips the named tuples' Python-level __new__: a third of the time here
        make = tuple.__new__
        fields = [
            (i, p, origins[o], statuses[s], make(Score, (r - hr, a - ha)), c, ac,
             make(Score, (hr, ha)))
            for i, p, o, s, r, a, c, ac, hr, ha in rows
        ]  # fmt: skip
        return [make(NodeSummary, row) for row in fields]

    def node_runs(self) -> dict[str, str | None]:
        """Every node's run (None: added by hand)."""
        with self._read() as conn:
            return dict(conn.execute(select(nodes.c.id, nodes.c.run_id)).all())

    def commits(self) -> dict[str, tuple[str, str]]:
        """Every node's (commit, tree)."""
        with self._read() as conn:
            rows = conn.execute(select(nodes.c.id, nodes.c.commit_sha, nodes.c.tree_sha))
            return {node_id: (commit, tree) for node_id, commit, tree in rows}

    def lineage(self) -> Lineage:
        with self._read() as conn:
            return Lineage(conn.execute(select(nodes.c.id, nodes.c.parent_id)).all())

    # -- evaluations -------------------------------------------------------------------------

    def record_evaluations(
        self, node_id: str, results: Sequence[EvaluationResult], *, run_id: str | None = None
    ) -> list[Evaluation]:
        """Store a batch of task results for one node: blobs first, then one transaction."""
        blob_refs = [
            tuple(
                self.blobs.put(data) if data is not None else None
                for data in (r.log, r.patch, r.trajectory)
            )
            for r in results
        ]
        created = _now()
        with self._write() as conn:
            if not conn.execute(select(nodes.c.id).where(nodes.c.id == node_id)).first():
                raise UnknownNode(f"no node {node_id!r} in {self.root}")
            latest = {
                (bench, task): attempt
                for bench, task, attempt in conn.execute(
                    select(
                        evaluations.c.benchmark, evaluations.c.task, func.max(evaluations.c.attempt)
                    )
                    .where(evaluations.c.node_id == node_id)
                    .group_by(evaluations.c.benchmark, evaluations.c.task)
                )
            }
            rows, totals = [], {}
            for result, (log, patch, trajectory) in zip(results, blob_refs, strict=True):
                status = EvalStatus(result.status)
                key = (result.benchmark, result.task)
                latest[key] = latest.get(key, 0) + 1
                rows.append(
                    {
                        "node_id": node_id,
                        "run_id": run_id,
                        "benchmark": result.benchmark,
                        "stage": result.stage,
                        "task": result.task,
                        "attempt": latest[key],
                        "status": status.value,
                        "resolved": status is EvalStatus.RESOLVED,
                        "duration_s": result.duration_s,
                        "cost_usd": result.cost_usd,
                        "model": result.model,
                        "limits": result.limits,
                        "log_blob": log,
                        "patch_blob": patch,
                        "trajectory_blob": trajectory,
                        "created_at": created,
                    }
                )
                if status.counted:
                    total = totals.get((result.benchmark, result.stage), Score())
                    totals[(result.benchmark, result.stage)] = total + Score(
                        int(status is EvalStatus.RESOLVED), 1
                    )
            if not rows:
                return []
            ids = conn.execute(
                insert(evaluations).returning(evaluations.c.id, sort_by_parameter_order=True),
                rows,
            ).scalars()
            stored = [_evaluation({**row, "id": i}) for i, row in zip(ids.all(), rows, strict=True)]
            for result, evaluation in zip(results, stored, strict=True):
                if result.findings:  # the agent's patch tried to game the grader
                    flagged = {
                        "evaluation": evaluation.id,
                        "benchmark": evaluation.benchmark,
                        "task": evaluation.task,
                        "findings": list(result.findings),
                    }
                    self._event(
                        conn, EventKind.SOLUTION_FLAGGED, flagged, run_id=run_id, node_id=node_id
                    )
            for (benchmark, stage), score in totals.items():
                self._add_score(conn, node_id, benchmark, stage, score)
            total = sum(totals.values(), Score())
            conn.execute(
                update(nodes)
                .where(nodes.c.id == node_id)
                .values(
                    resolved=nodes.c.resolved + total.resolved,
                    attempted=nodes.c.attempted + total.attempted,
                )
            )
            self._event(
                conn,
                EventKind.EVALUATIONS_RECORDED,
                {
                    "count": len(rows),
                    "resolved": sum(row["resolved"] for row in rows),
                    "benchmarks": sorted({row["benchmark"] for row in rows}),
                },
                run_id=run_id,
                node_id=node_id,
            )
        return stored

    def _add_score(
        self, conn: Connection, node_id: str, benchmark: str, stage: str, score: Score
    ) -> None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        stmt = upsert(node_scores).values(
            node_id=node_id,
            benchmark=benchmark,
            stage=stage,
            resolved=score.resolved,
            attempted=score.attempted,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["node_id", "benchmark", "stage"],
                set_={
                    "resolved": node_scores.c.resolved + stmt.excluded.resolved,
                    "attempted": node_scores.c.attempted + stmt.excluded.attempted,
                },
            )
        )

    def evaluations(self, node_id: str) -> list[Evaluation]:
        query = (
            select(evaluations)
            .where(evaluations.c.node_id == node_id)
            .order_by(evaluations.c.benchmark, evaluations.c.task, evaluations.c.attempt)
        )
        with self._read() as conn:
            return [_evaluation(row) for row in conn.execute(query).mappings()]

    def run_node_evaluations(self, run_id: str) -> dict[str, list[Evaluation]]:
        """Every evaluation of the run's nodes (whichever run made it), by node, in one
        query: what a run's search state is rebuilt from."""
        query = (
            select(evaluations)
            .join(nodes, nodes.c.id == evaluations.c.node_id)
            .where(nodes.c.run_id == run_id)
            .order_by(evaluations.c.benchmark, evaluations.c.task, evaluations.c.attempt)
        )
        found: dict[str, list[Evaluation]] = {}
        with self._read() as conn:
            for row in conn.execute(query).mappings():
                found.setdefault(row["node_id"], []).append(_evaluation(row))
        return found

    def evaluation(self, evaluation_id: int) -> Evaluation:
        query = select(evaluations).where(evaluations.c.id == evaluation_id)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise InvalidArgument(f"no evaluation {evaluation_id} in {self.root}")
        return _evaluation(row)

    def run_results(self, run_id: str) -> list[tuple[str, bool, str, datetime]]:
        """A run's counted results, oldest first: (node, resolved, stage, when)."""
        query = (
            select(evaluations.c.node_id, evaluations.c.resolved, evaluations.c.stage,
                   evaluations.c.created_at)
            .where(evaluations.c.run_id == run_id, evaluations.c.status != EvalStatus.ERROR.value)
            .order_by(evaluations.c.id)
        )  # fmt: skip
        with self._read() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def cached_evaluation(
        self, tree: str, benchmark: str, task: str, model: str | None, limits: str | None
    ) -> Evaluation | None:
        """The latest counted result of any node with this tree on this task, made with this
        model under these limits: the same code is not evaluated twice."""
        query = (
            select(evaluations)
            .join(nodes, nodes.c.id == evaluations.c.node_id)
            .where(
                nodes.c.tree_sha == tree,
                evaluations.c.benchmark == benchmark,
                evaluations.c.task == task,
                evaluations.c.model.is_not_distinct_from(model),
                evaluations.c.limits.is_not_distinct_from(limits),
                evaluations.c.status != EvalStatus.ERROR.value,
            )
            .order_by(evaluations.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return _evaluation(row) if row else None

    def scores(self, node_id: str) -> NodeScores:
        with self._read() as conn:
            rows = conn.execute(
                select(
                    node_scores.c.benchmark,
                    node_scores.c.stage,
                    node_scores.c.resolved,
                    node_scores.c.attempted,
                ).where(node_scores.c.node_id == node_id)
            ).all()
        return NodeScores({(b, s): Score(r, a) for b, s, r, a in rows})

    # -- reviews, FM usage, events ------------------------------------------------------------

    def add_review(
        self,
        node_id: str,
        *,
        reviewer: str,
        kind: str,
        decision: str,
        reason: str,
        run_id: str | None = None,
        tree: str | None = None,
        risk: str | None = None,
        findings: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Review:
        """Keep a review (`automated`) or a person's decision (`human`), with its audit log
        entry, in one transaction."""
        row = {
            "node_id": node_id,
            "run_id": run_id,
            "reviewer": reviewer,
            "kind": kind,
            "decision": decision,
            "reason": reason,
            "created_at": _now(),
            "tree": tree,
            "risk": risk,
            "findings": findings,
            "details": details,
        }
        with self._write() as conn:
            review_id = conn.execute(insert(reviews).returning(reviews.c.id), row).scalar_one()
            self._event(
                conn,
                EventKind.REVIEW_ADDED,
                {"reviewer": reviewer, "kind": kind, "decision": decision},
                run_id=run_id,
                node_id=node_id,
            )
            entry = {"review": review_id, "by": reviewer, "decision": decision, "tree": tree,
                     "reason": reason}  # fmt: skip
            if kind == "automated":
                entry |= {"risk": risk, "findings": findings or []}
            self._audit(conn, "review" if kind == "automated" else "decision", actor or reviewer,
                        entry, node_id=node_id, run_id=run_id)  # fmt: skip
        return Review(id=review_id, **row)

    def reviews(self, node_id: str) -> list[Review]:
        query = select(reviews).where(reviews.c.node_id == node_id).order_by(reviews.c.id)
        with self._read() as conn:
            return [Review(**row) for row in conn.execute(query).mappings()]

    def review_marks(self) -> dict[str, tuple[str | None, str | None]]:
        """Each reviewed node's latest automated risk and latest person's decision (approve,
        reject) in one scan, whatever tree each was made on: for views of the whole archive."""
        query = select(reviews.c.node_id, reviews.c.kind, reviews.c.risk, reviews.c.decision)
        marks: dict[str, tuple[str | None, str | None]] = {}
        with self._read() as conn:
            for node_id, kind, risk, decision in conn.execute(query.order_by(reviews.c.id)):
                old_risk, old_decision = marks.get(node_id, (None, None))
                if kind == "automated":
                    marks[node_id] = (risk, old_decision)
                else:
                    marks[node_id] = (old_risk, decision)
        return marks

    def decisions_after(self, after: int) -> list[Review]:
        """People's decisions with an id above `after`, oldest first (a run polls these)."""
        query = (
            select(reviews)
            .where(reviews.c.kind == "human", reviews.c.id > after)
            .order_by(reviews.c.id)
        )
        with self._read() as conn:
            return [Review(**row) for row in conn.execute(query).mappings()]

    # -- the audit log -----------------------------------------------------------------------

    def record_audit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        actor: str,
        node_id: str | None = None,
        run_id: str | None = None,
    ) -> AuditEntry:
        """An entry of the audit log (a gate passage, an export)."""
        with self._write() as conn:
            return self._audit(conn, kind, actor, payload, node_id=node_id, run_id=run_id)

    def _audit(
        self,
        conn: Connection,
        kind: str,
        actor: str,
        payload: dict[str, Any],
        *,
        node_id: str | None,
        run_id: str | None,
    ) -> AuditEntry:
        # one writer at a time: SQLite's transaction holds the lock already
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        # the next entry follows the head, not the table: a cut-off end stays a gap
        head = self._audit_head()
        seq, prev = (head[0] + 1, head[1]) if head else (1, audit.GENESIS)
        payload = json.loads(json.dumps(payload, default=str))  # as it reads back
        at = _now().isoformat()
        digest = audit.entry_hash(seq, kind, node_id, run_id, actor, payload, at, prev)
        entry = AuditEntry(seq, kind, node_id, run_id, actor, payload, at, prev, digest)
        conn.execute(insert(audit_log), entry.__dict__)
        # the head is written before the entry commits: a crash between reads as a missing
        # entry, never as a silently shorter log
        self.git.set_ref_blob(audit.HEAD_REF, audit.format_head(seq, digest).encode())
        return entry

    def audit_entries(self) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
            return [AuditEntry(**row) for row in rows]

    def verify_audit(self) -> audit.AuditReport:
        """The audit log's hash chain checked entry by entry and against its head."""
        return audit.verify(self.audit_entries(), self._audit_head())

    def _audit_head(self) -> tuple[int, str] | None:
        """The audit log's head as the git store keeps it."""
        return audit.parse_head((self.git.read_ref_blob(audit.HEAD_REF) or b"").decode())

    def record_fm_call(self, call: FMCall) -> None:
        with self._write() as conn:
            conn.execute(insert(fm_usage), {**call.__dict__, "created_at": _now()})

    def fm_calls(
        self,
        *,
        run_id: str | None = None,
        unit_id: str | None = None,
        node_id: str | None = None,
    ) -> list[FMCall]:
        """Metered FM calls, oldest first, of one run, unit and/or node (all when none)."""
        columns = [fm_usage.c[name] for name in FMCall.__dataclass_fields__]
        query = select(*columns).order_by(fm_usage.c.id)
        for column, value in (("run_id", run_id), ("unit_id", unit_id), ("node_id", node_id)):
            if value is not None:
                query = query.where(fm_usage.c[column] == value)
        with self._read() as conn:
            return [FMCall(**row) for row in conn.execute(query).mappings()]

    def fm_spend(self, run_id: str) -> tuple[int, float]:
        """Tokens and USD a run has spent on FM calls so far (budgets resume from here)."""
        tokens = func.coalesce(func.sum(fm_usage.c.input_tokens + fm_usage.c.output_tokens), 0)
        usd = func.coalesce(func.sum(fm_usage.c.cost_usd), 0.0)
        with self._read() as conn:
            spent = conn.execute(select(tokens, usd).where(fm_usage.c.run_id == run_id)).one()
        return int(spent[0]), float(spent[1])

    def spend_series(self, run_id: str) -> list[tuple[datetime, int, float]]:
        """A run's FM calls, oldest first: (when, tokens, USD)."""
        tokens = fm_usage.c.input_tokens + fm_usage.c.output_tokens
        query = (
            select(fm_usage.c.created_at, tokens, fm_usage.c.cost_usd)
            .where(fm_usage.c.run_id == run_id)
            .order_by(fm_usage.c.id)
        )
        with self._read() as conn:
            return [(at, int(t), float(usd)) for at, t, usd in conn.execute(query)]

    def models_used(self, node_ids: Sequence[str]) -> dict[str, list[str]]:
        """The FM models metered against each node (building it or evaluating it)."""
        found: dict[str, set[str]] = {n: set() for n in node_ids}
        with self._read() as conn:
            for node_id, model in conn.execute(
                select(fm_usage.c.node_id, fm_usage.c.model)
                .where(fm_usage.c.node_id.in_(node_ids))
                .distinct()
            ):
                found[node_id].add(model)
            for node_id, model in conn.execute(
                select(evaluations.c.node_id, evaluations.c.model)
                .where(and_(evaluations.c.node_id.in_(node_ids), evaluations.c.model.is_not(None)))
                .distinct()
            ):
                found[node_id].add(model)
        return {n: sorted(models) for n, models in found.items()}

    def append_event(
        self,
        kind: EventKind,
        payload: dict[str, Any],
        *,
        run_id: str | None = None,
        node_id: str | None = None,
    ) -> int:
        """The new event's id."""
        with self._write() as conn:
            return self._event(conn, kind, payload, run_id=run_id, node_id=node_id)

    def events(
        self, *, after: int = 0, limit: int = 1000, run_id: str | None = None, last: bool = False
    ) -> list[Event]:
        """Events with an id above `after`, oldest first (of one run; `last`: the latest
        `limit` of them)."""
        query = select(events).where(events.c.id > after)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        order = events.c.id.desc() if last else events.c.id
        with self._read() as conn:
            rows = conn.execute(query.order_by(order).limit(limit)).mappings()
            found = [Event(**row) for row in rows]
        return found[::-1] if last else found

    def code_embedding(self, tree: str, model: str) -> bytes | None:
        """The stored embedding of an agent's code (float32 bytes), if any."""
        query = select(code_embeddings.c.vector).where(
            code_embeddings.c.tree == tree, code_embeddings.c.model == model
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    def put_code_embedding(self, tree: str, model: str, vector: bytes) -> None:
        """Keep an embedding of an agent's code; the first one kept for a tree stays."""
        row = {"tree": tree, "model": model, "vector": vector, "created_at": _now()}
        with contextlib.suppress(IntegrityError), self._write() as conn:
            conn.execute(insert(code_embeddings), row)

    def events_of(self, run_id: str, kind: EventKind) -> list[Event]:
        """A run's events of one kind, oldest first."""
        return self._events_where(events.c.run_id == run_id, events.c.kind == kind)

    def node_events(self, node_id: str, kind: EventKind) -> list[Event]:
        """A node's events of one kind, oldest first."""
        return self._events_where(events.c.node_id == node_id, events.c.kind == kind)

    def _events_where(self, *conditions: Any) -> list[Event]:
        query = select(events).where(*conditions).order_by(events.c.id)
        with self._read() as conn:
            return [Event(**row) for row in conn.execute(query).mappings()]

    def last_event(self, run_id: str, *kinds: EventKind) -> Event | None:
        """A run's latest event of one of these kinds."""
        query = (
            select(events)
            .where(events.c.run_id == run_id, events.c.kind.in_(kinds))
            .order_by(events.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return Event(**row) if row else None

    def event_counts(self, run_id: str) -> dict[str, int]:
        """How many events of each kind a run has logged."""
        query = (
            select(events.c.kind, func.count())
            .where(events.c.run_id == run_id)
            .group_by(events.c.kind)
        )
        with self._read() as conn:
            return {kind: count for kind, count in conn.execute(query)}

    @staticmethod
    def _event(
        conn: Connection,
        kind: EventKind,
        payload: dict[str, Any],
        *,
        run_id: str | None = None,
        node_id: str | None = None,
    ) -> int:
        kind, payload = checked(kind, payload)
        added = conn.execute(
            insert(events),
            {
                "run_id": run_id,
                "node_id": node_id,
                "kind": kind,
                "payload": payload,
                "created_at": _now(),
            },
        )
        return added.inserted_primary_key[0]

    # -- integrity ---------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """Compare every node row with the git store, and its running totals with their sources."""
        with self._read() as conn:
            rows = conn.execute(select(nodes)).mappings().all()
            stage_totals = {
                node_id: Score(int(r), int(a))
                for node_id, r, a in conn.execute(
                    select(
                        node_scores.c.node_id,
                        func.sum(node_scores.c.resolved),
                        func.sum(node_scores.c.attempted),
                    ).group_by(node_scores.c.node_id)
                )
            }
        commit_of = {r["id"]: r["commit_sha"] for r in rows}
        infos = self.git.commit_infos(commit_of.values())
        refs = self.git.node_refs()
        children: dict[str, list[str]] = {}
        for r in rows:
            if r["parent_id"]:
                children.setdefault(r["parent_id"], []).append(r["status"])
        problems = []
        for r in rows:
            node_id, commit = r["id"], r["commit_sha"]
            info = infos[commit]
            if info is None:
                problems.append(f"node {node_id}: commit {commit} is missing from the git store")
            else:
                if info.tree != r["tree_sha"]:
                    problems.append(f"node {node_id}: commit tree differs from the row's tree")
                expected = (commit_of[r["parent_id"]],) if r["parent_id"] else ()
                if info.parents != expected:
                    problems.append(f"node {node_id}: commit parents differ from the archive's")
            if refs.get(node_id) != commit:
                problems.append(f"node {node_id}: ref refs/dgm/nodes/{node_id} missing or moved")
            if Score(r["resolved"], r["attempted"]) != stage_totals.get(node_id, Score()):
                problems.append(f"node {node_id}: score totals differ from its per-stage scores")
            kids = children.get(node_id, [])
            admitted = sum(k == NodeStatus.ADMITTED for k in kids)
            if (r["children"], r["admitted_children"]) != (len(kids), admitted):
                problems.append(f"node {node_id}: child counts differ from its children")
        orphans = sorted(set(refs) - set(commit_of))
        return CheckReport(nodes=len(rows), problems=problems, orphan_refs=orphans)

    def disk_usage(self) -> dict[str, int]:
        def size(path: Path) -> int:
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

        usage = {"git": size(self.layout.git), "blobs": size(self.layout.blobs)}
        if self._url.startswith("sqlite"):
            usage["sql"] = sum(
                os.path.getsize(p)
                for p in (self.layout.sqlite, Path(f"{self.layout.sqlite}-wal"))
                if p.exists()
            )
        return usage


def _node(row: Any) -> Node:
    return Node(
        id=row["id"],
        parent_id=row["parent_id"],
        run_id=row["run_id"],
        commit=row["commit_sha"],
        tree=row["tree_sha"],
        origin=Origin(row["origin"]),
        status=NodeStatus(row["status"]),
        proposal=row["proposal"],
        meta=row["meta"],
        created_at=row["created_at"],
    )


def _evaluation(row: Any) -> Evaluation:
    return Evaluation(**{**row, "status": EvalStatus(row["status"])})
