"""catalog: products.stock_qty (units on hand; NULL = not tracked)

Revision ID: 0009_accessories
Revises: 0002_kb
Create Date: 2026-12-03 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_accessories"
down_revision: str | Sequence[str] | None = "0002_kb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stock_qty", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("stock_qty")
