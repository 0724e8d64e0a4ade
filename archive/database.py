"""Engines, connection settings, schema migrations and database error translation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import make_url

from archive.errors import (
    ArchiveBusy,
    ArchiveError,
    DatabaseUnavailable,
    DiskFull,
    SchemaTooNew,
    is_disk_full,
)
from archive.schema import SCHEMA_REVISION

MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Plain `postgresql://` URLs use psycopg 3, the driver dgm installs."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def display_url(url: str) -> str:
    """A URL fit to print: the password hidden."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def create(url: str, *, busy_timeout: float) -> Engine:
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}
        )
        _configure_sqlite(engine, busy_timeout)
        return engine
    if backend == "postgresql":
        ms = int(busy_timeout * 1000)
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10, "options": f"-c lock_timeout={ms}"},
        )
    raise DatabaseUnavailable(
        f"unsupported database {backend!r}; use SQLite (the default) or a postgresql:// URL"
    )


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # We issue BEGIN ourselves (below), so the driver must not start transactions.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that later tries
        # to write fails at once with "database is locked" instead of waiting its turn.
        write = conn.get_execution_options().get("dgm_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turn driver errors a user can cause into one-line ArchiveErrors."""
    try:
        yield
    except exc.OperationalError as error:
        raise _translate(error, url) from error
    except exc.DBAPIError as error:
        if "append-only" in str(error.orig):
            raise ArchiveError("the event log is append-only; events cannot be changed") from error
        raise


def _translate(error: exc.OperationalError, url: str) -> ArchiveError:
    text = str(error.orig).strip()
    safe_url = display_url(url)
    if "database is locked" in text or "lock timeout" in text:
        return ArchiveBusy(
            f"the archive database {safe_url} is locked by another process; "
            "wait for it to finish (or stop it) and try again"
        )
    if is_disk_full(error):
        return DiskFull(
            f"the disk holding the archive database {safe_url} is full; "
            "free space there and run the command again"
        )
    first_line = text.splitlines()[0] if text else type(error.orig).__name__
    return DatabaseUnavailable(
        f"cannot use database {safe_url}: {first_line}; check that it exists and is reachable"
    )


def current_revision(engine: Engine) -> str | None:
    # Read alembic's table directly: importing alembic costs every command 0.15 s.
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Bring the schema to SCHEMA_REVISION; refuse a database written by a newer dgm."""
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    if revision is not None and not _known_revision(revision):
        raise SchemaTooNew(
            f"the archive's schema (revision {revision}) is newer than this dgm understands "
            f"(revision {SCHEMA_REVISION}); upgrade dgm to open it"
        )
    upgrade(engine)


def upgrade(engine: Engine) -> None:
    from alembic import command

    with engine.connect().execution_options(dgm_write=True) as conn:
        command.upgrade(_alembic_config(conn), "head")
        conn.commit()


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except CommandError:
        return False


def _alembic_config(conn: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg
