"""Initial schema: documents, runs, fields.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("document_sha256", sa.String(64), sa.ForeignKey("documents.sha256"), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("template_sha256", sa.String(), nullable=False),
        sa.Column("schema_hash", sa.String(), nullable=False),
        sa.Column("profile", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("sampling_json", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("total_s", sa.Float(), nullable=True),
        sa.Column("timings_json", sa.String(), nullable=False),
        sa.Column("result_json", sa.String(), nullable=True),
        sa.Column("raw_output", sa.String(), nullable=True),
        sa.Column("docanalyst_version", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_runs_document_sha256", "runs", ["document_sha256"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index(
        "ix_runs_cache_key",
        "runs",
        ["document_sha256", "template", "template_version", "schema_hash", "profile", "model"],
    )
    op.create_table(
        "fields",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("quote", sa.String(), nullable=True),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("quote_found", sa.Boolean(), nullable=False),
        sa.Column("quote_status", sa.String(), nullable=False),
        sa.Column("found_page", sa.Integer(), nullable=True),
    )
    op.create_index("ix_fields_run_id", "fields", ["run_id"])


def downgrade() -> None:
    op.drop_table("fields")
    op.drop_table("runs")
    op.drop_table("documents")
