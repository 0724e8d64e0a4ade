"""SQL tables of an archive. Changes go through a new Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# The newest migration; an archive stamped with anything else is upgraded or refused.
SCHEMA_REVISION = "0005"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Timestamps are UTC and timezone-aware on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value if dialect.name != "sqlite" or value is None else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ID = String(32)  # uuid4 hex: random leading characters keep short prefixes unique
SHA1 = String(40)
BLOB_REF = String(71)  # "sha256:" + 64 hex

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("config", JSON, nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("stop_reason", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)

# the scheduler that holds a run: one at a time, proven alive by its heartbeat
run_leases = Table(
    "run_leases",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", ID, primary_key=True),
    Column("parent_id", ID, ForeignKey("nodes.id"), index=True),
    Column("run_id", ID, ForeignKey("runs.id"), index=True),
    Column("commit_sha", SHA1, nullable=False, unique=True),
    Column("tree_sha", SHA1, nullable=False, index=True),
    Column("origin", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("proposal", Text, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Running totals, kept in the transactions that change them: parent selection reads
    # every node's score and child counts on each step, and must not aggregate to do so.
    Column("resolved", Integer, nullable=False),
    Column("attempted", Integer, nullable=False),
    Column("children", Integer, nullable=False),
    Column("admitted_children", Integer, nullable=False),
    # Covers the selection view in its order: read without touching the wide rows or sorting.
    Index(
        "ix_nodes_selection",
        "created_at",
        "id",
        "parent_id",
        "origin",
        "status",
        "resolved",
        "attempted",
        "children",
        "admitted_children",
    ),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node_id", ID, ForeignKey("nodes.id"), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id"), index=True),
    Column("benchmark", String(100), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("task", String(300), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolved", Boolean, nullable=False),
    Column("duration_s", Float),
    Column("cost_usd", Float),
    Column("model", String(200)),
    Column("limits", String(200)),  # the agent's limits (AgentLimits.key); cache key part
    Column("log_blob", BLOB_REF),
    Column("patch_blob", BLOB_REF),
    Column("trajectory_blob", BLOB_REF),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("node_id", "benchmark", "task", "attempt"),
)

# Per-stage running totals, kept in the same transaction as each evaluation.
node_scores = Table(
    "node_scores",
    metadata,
    Column("node_id", ID, ForeignKey("nodes.id"), primary_key=True),
    Column("benchmark", String(100), primary_key=True),
    Column("stage", String(100), primary_key=True),
    Column("resolved", Integer, nullable=False),
    Column("attempted", Integer, nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node_id", ID, ForeignKey("nodes.id"), nullable=False, index=True),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("reviewer", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("tree", SHA1),  # the code the review or decision is about
    Column("risk", String(20)),  # automated reviews: low | medium | high | critical
    Column("findings", JSON),
    Column("details", JSON),  # per reviewer: seconds, model, tokens, cost, reasons
)

# Every review, decision, gate passage and export, chained by hash (archive/audit.py);
# append-only, and its head is also kept in the git store.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(20), nullable=False),
    Column("node_id", ID),
    Column("run_id", ID),
    Column("actor", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("at", String(40), nullable=False),  # ISO time, hashed as written
    Column("prev", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

fm_usage = Table(
    "fm_usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id"), index=True),
    Column("node_id", ID, ForeignKey("nodes.id"), index=True),
    Column("unit_id", String(64)),
    Column("provider", String(50), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("node_id", ID, ForeignKey("nodes.id")),
    Column("kind", String(50), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "run_id", "id"),
)

code_embeddings = Table(
    "code_embeddings",
    metadata,
    # keyed by the agent's tree: two nodes with the same code share one
    Column("tree", SHA1, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian
    Column("created_at", UTCDateTime, nullable=False),
)
