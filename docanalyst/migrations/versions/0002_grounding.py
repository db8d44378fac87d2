"""Grounding detail: spans, scores and page match per field; grounding counts and the question per run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("page_match", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("span_start", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("span_end", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("question", sa.String(), nullable=True))
        batch.add_column(sa.Column("quotes_total", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quotes_found", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("grounding_rate", sa.Float(), nullable=True))
    # Rows from 0001 used found / other_page; map them onto the new statuses.
    # a bound True, not the literal 1: PostgreSQL's boolean takes no integer
    op.execute(
        sa.text("UPDATE fields SET quote_status = 'exact', page_match = :yes WHERE quote_status = 'found'").bindparams(
            yes=True
        )
    )
    op.execute("UPDATE fields SET quote_status = 'exact' WHERE quote_status = 'other_page'")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in ("grounding_rate", "quotes_found", "quotes_total", "question"):
            batch.drop_column(name)
    with op.batch_alter_table("fields") as batch:
        for name in ("score", "span_end", "span_start", "page_match"):
            batch.drop_column(name)
