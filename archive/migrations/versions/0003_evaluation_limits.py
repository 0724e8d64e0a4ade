"""The agent's limits a result was made under (`max_steps=30 timeout_s=1800`): the cache of
results reuses one only under the same limits. Results from before are never reused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("limits", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("limits")
