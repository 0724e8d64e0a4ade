"""Migrations are the only way the schema changes, and they build exactly `archive.schema`."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from archive import Archive, database
from archive.schema import SCHEMA_REVISION, metadata


def test_schema_revision_is_the_newest_migration():
    assert ScriptDirectory(str(database.MIGRATIONS)).get_heads() == [SCHEMA_REVISION]


def test_migrated_database_matches_the_tables(archive):
    with archive._engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert {
        "runs",
        "nodes",
        "evaluations",
        "node_scores",
        "reviews",
        "fm_usage",
        "events",
    } <= tables


def test_an_old_archive_is_upgraded_on_open(tmp_path, database_url, agent_dir):
    from alembic import command

    arc = Archive.init(tmp_path / "a", database_url=database_url)
    with arc._engine.connect() as conn:
        command.downgrade(database._alembic_config(conn), "base")
        conn.commit()
    assert database.current_revision(arc._engine) is None
    arc.close()
    with Archive.open(tmp_path / "a") as reopened:
        assert database.current_revision(reopened._engine) == SCHEMA_REVISION
        reopened.add_node(agent_dir)
