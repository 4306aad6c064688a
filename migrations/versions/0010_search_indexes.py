"""customers: indexes for the console's name search on PostgreSQL

Staff search customers by a part of their name (`lower(name) LIKE '%…%'`), which without an
index reads every row (≈ 0.5 s at 1,000,000 customers). On PostgreSQL:
- `ix_customers_name_trgm`: GIN over `lower(name)` with pg_trgm's `gin_trgm_ops` (the
  extension is created in `public` if missing, and the operator class is schema-qualified so
  schemas reached through `?search_path=` work too) — substring queries of 3+ characters;
- `ix_customers_name_prefix`: btree over `lower(name) text_pattern_ops` — the prefix match
  used for 1-2 character queries (a surname, a two-character Chinese name), which have no
  trigram to look up.
Phone, e-mail and Telegram id are stored normalised and already have unique btree indexes.
SQLite (embedded, small) needs neither; there this revision does nothing.

Revision ID: 0010_search_indexes
Revises: 0009_render
Create Date: 2026-12-03 14:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_search_indexes"
down_revision: str | Sequence[str] | None = "0009_render"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        return
    op.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
    op.execute(
        sa.text(
            "CREATE INDEX ix_customers_name_trgm ON customers "
            "USING gin (lower(name) public.gin_trgm_ops)"
        )
    )
    op.execute(
        sa.text("CREATE INDEX ix_customers_name_prefix ON customers (lower(name) text_pattern_ops)")
    )


def downgrade() -> None:
    if not _postgres():
        return
    # The extension stays: other schemas of the same database may use it.
    op.execute(sa.text("DROP INDEX IF EXISTS ix_customers_name_prefix"))
    op.execute(sa.text("DROP INDEX IF EXISTS ix_customers_name_trgm"))
