"""Initial archive schema: runs, nodes, evaluations, scores, reviews, FM usage, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
SHA1 = sa.String(40)
BLOB_REF = sa.String(71)
TIMESTAMP = sa.DateTime(timezone=True)

# The event log is append-only: the database itself refuses updates and deletes.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER events_no_{op_} BEFORE {op_.upper()} ON events "
    "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
    for op_ in ("update", "delete")
]
POSTGRES_TRIGGERS = [
    """CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$""",
    """CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
       FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stop_reason", sa.Text()),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", ID, nullable=False),
        sa.Column("parent_id", ID),
        sa.Column("run_id", ID),
        sa.Column("commit_sha", SHA1, nullable=False),
        sa.Column("tree_sha", SHA1, nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("attempted", sa.Integer(), nullable=False),
        sa.Column("children", sa.Integer(), nullable=False),
        sa.Column("admitted_children", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.ForeignKeyConstraint(["parent_id"], ["nodes.id"], name="fk_nodes_parent_id_nodes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_nodes_run_id_runs"),
        sa.UniqueConstraint("commit_sha", name="uq_nodes_commit_sha"),
    )
    op.create_index("ix_nodes_parent_id", "nodes", ["parent_id"])
    op.create_index("ix_nodes_run_id", "nodes", ["run_id"])
    op.create_index("ix_nodes_tree_sha", "nodes", ["tree_sha"])
    op.create_index(
        "ix_nodes_selection",
        "nodes",
        [
            "created_at",
            "id",
            "parent_id",
            "origin",
            "status",
            "resolved",
            "attempted",
            "children",
            "admitted_children",
        ],
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", ID, nullable=False),
        sa.Column("run_id", ID),
        sa.Column("benchmark", sa.String(100), nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("task", sa.String(300), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float()),
        sa.Column("cost_usd", sa.Float()),
        sa.Column("model", sa.String(200)),
        sa.Column("log_blob", BLOB_REF),
        sa.Column("patch_blob", BLOB_REF),
        sa.Column("trajectory_blob", BLOB_REF),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_evaluations_node_id_nodes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_evaluations_run_id_runs"),
        sa.UniqueConstraint(
            "node_id",
            "benchmark",
            "task",
            "attempt",
            name="uq_evaluations_node_id_benchmark_task_attempt",
        ),
    )
    op.create_index("ix_evaluations_run_id", "evaluations", ["run_id"])
    op.create_table(
        "node_scores",
        sa.Column("node_id", ID, nullable=False),
        sa.Column("benchmark", sa.String(100), nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("attempted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "benchmark", "stage", name="pk_node_scores"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_node_scores_node_id_nodes"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", ID, nullable=False),
        sa.Column("run_id", ID),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_reviews_node_id_nodes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_reviews_run_id_runs"),
    )
    op.create_index("ix_reviews_node_id", "reviews", ["node_id"])
    op.create_table(
        "fm_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", ID),
        sa.Column("node_id", ID),
        sa.Column("unit_id", sa.String(64)),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fm_usage"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_fm_usage_run_id_runs"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_fm_usage_node_id_nodes"),
    )
    op.create_index("ix_fm_usage_run_id", "fm_usage", ["run_id"])
    op.create_index("ix_fm_usage_node_id", "fm_usage", ["node_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", ID),
        sa.Column("node_id", ID),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name="fk_events_node_id_nodes"),
    )
    op.create_index("ix_events_run_id_id", "events", ["run_id", "id"])
    for statement in POSTGRES_TRIGGERS if _dialect() == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if _dialect() == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    for table in (
        "events",
        "fm_usage",
        "reviews",
        "node_scores",
        "evaluations",
        "nodes",
        "runs",
    ):
        op.drop_table(table)


def _dialect() -> str:
    return op.get_bind().dialect.name
