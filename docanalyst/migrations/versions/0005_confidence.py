"""Confidence: a score in [0, 1] on every stored value, and the token log-probabilities it was computed from.

``fields.confidence`` is what ``confidence.field_confidences`` gave the value; ``runs.token_logprobs_json`` keeps
the answer's token texts and log-probabilities so that a stored run can be scored again with another aggregation
(``docanalyst eval`` compares them on the labels). Runs stored before this revision have NULL in both: no score,
never a made-up one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fields") as batch:
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("token_logprobs_json", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("token_logprobs_json")
    with op.batch_alter_table("fields") as batch:
        batch.drop_column("confidence")
