"""Alembic environment: migrations run on the connection the archive hands over.

`alembic -x url=sqlite:///path/archive.db revision --autogenerate -m "..."` (run from the
repository root, with `alembic.ini`) drafts a new migration against an existing database.
"""

from alembic import context
from sqlalchemy import create_engine

from archive.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(
        connection=conn, target_metadata=metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
