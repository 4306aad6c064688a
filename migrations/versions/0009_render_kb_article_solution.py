"""knowledge base: kb_articles.solution (the sections that say what to do)

The bot shows an article's solution sections (front matter `solution:`) instead of the
chunk that matched. Existing rows get an empty list and their content hash is cleared, so
the next `hwcrm kb ingest` reads every article again and fills it in.

Revision ID: 0009_render
Revises: 0004_console
Create Date: 2026-12-03 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_render"
down_revision: str | Sequence[str] | None = "0004_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kb_articles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "solution",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )
    # Re-read every article on the next ingestion (that fills `solution` in).
    op.execute(sa.text("UPDATE kb_articles SET content_hash = ''"))


def downgrade() -> None:
    with op.batch_alter_table("kb_articles", schema=None) as batch_op:
        batch_op.drop_column("solution")
