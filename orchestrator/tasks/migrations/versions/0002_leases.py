"""Leases: the claim's ``owner`` and ``lease_until`` (``attempts`` is the fencing token).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("tasks")}
    with op.batch_alter_table("tasks") as batch:
        if "owner" not in columns:
            batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        if "lease_until" not in columns:
            batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
