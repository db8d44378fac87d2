"""Evaluations: `docanalyst eval` runs and their per-document items.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dataset", sa.String(), nullable=False),
        sa.Column("dataset_path", sa.String(), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("schema_hash", sa.String(), nullable=False),
        sa.Column("profile", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("summary_json", sa.String(), nullable=False),
        sa.Column("docanalyst_version", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "evaluation_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("evaluation_id", sa.Integer(), sa.ForeignKey("evaluations.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("document_sha256", sa.String(), nullable=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("run_status", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("scores_json", sa.String(), nullable=False),
        sa.Column("excluded_json", sa.String(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_s", sa.Float(), nullable=True),
        sa.Column("quotes_total", sa.Integer(), nullable=True),
        sa.Column("quotes_found", sa.Integer(), nullable=True),
    )
    op.create_index("ix_evaluation_items_evaluation_id", "evaluation_items", ["evaluation_id"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_items_evaluation_id", "evaluation_items")
    op.drop_table("evaluation_items")
    op.drop_table("evaluations")
