"""Reviewers' revisions of stored values: the table and its reads and writes (migration 0006).

A revision never changes the ``fields`` row: the model's answer and its grounding stay as they were, and every
accept, edit or reject is a new row with who and when. The newest revision of a path is its reviewed value.
This module only stores; reviewing.py decides what a review means (grounding an attached quote, labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlmodel import Field, Session, SQLModel, col, select

from docanalyst.database import plain_db_error, plain_errors, storable_text
from docanalyst.errors import StoreError
from docanalyst.statuses import QuoteStatus
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store


def _now() -> datetime:
    return datetime.now(UTC)


class RevisionRow(SQLModel, table=True):
    __tablename__ = "revisions"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    path: str
    action: str  # statuses.ReviewAction: accepted | edited | rejected
    value: str | None = None  # the value after the review (accepted: the model's; rejected: none)
    quote: str | None = None  # the reviewer's evidence, or the model's quote when it was kept
    page: int | None = None
    quote_status: str | None = None  # grounding of the reviewer's quote (statuses.QuoteStatus)
    span_start: int | None = None
    span_end: int | None = None
    reviewer: str
    note: str | None = None
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))


def save_revisions(store: Store, rows: Sequence[RevisionRow]) -> list[int]:
    """All of one review's rows in one transaction: a review is stored whole or not at all."""
    try:
        with Session(store.engine, expire_on_commit=False) as session, session.begin():
            for row in rows:
                storable_text(row)
                session.add(row)
            session.flush()
            return [int(row.id) for row in rows if row.id is not None]
    except Exception as exc:  # rolled back
        raise StoreError(f"could not store the review: {plain_db_error(exc)}") from exc


def revisions_of(store: Store, run_ids: Sequence[int]) -> dict[int, list[RevisionRow]]:
    """Every revision of these runs, oldest first, by run id."""
    out: dict[int, list[RevisionRow]] = {rid: [] for rid in run_ids}
    if not run_ids:
        return out
    with plain_errors("could not read the reviews"), Session(store.engine) as session:
        stmt = select(RevisionRow).where(col(RevisionRow.run_id).in_(list(run_ids))).order_by(col(RevisionRow.id))
        for row in session.exec(stmt):
            out[row.run_id].append(row)
    return out


def latest(revisions: Sequence[RevisionRow]) -> dict[str, RevisionRow]:
    """The newest revision of each path: what the reviewers stand behind now."""
    return {row.path: row for row in revisions}


def reviewed_runs(store: Store, template: str | None = None) -> list[tuple[RunRow, DocumentRow]]:
    """Runs with at least one revision (of one template), newest first: the corrections dataset."""
    with plain_errors("could not read the reviews"), Session(store.engine) as session:
        reviewed = select(RevisionRow.run_id).distinct()
        stmt = select(RunRow, DocumentRow).where(col(RunRow.id).in_(reviewed))
        stmt = stmt.where(RunRow.document_sha256 == DocumentRow.sha256).order_by(col(RunRow.id).desc())
        if template is not None:
            stmt = stmt.where(RunRow.template == template)
        return [(run, doc) for run, doc in session.exec(stmt)]


def reviewed_fields(fields: Sequence[FieldRow], revisions: Sequence[RevisionRow]) -> list[dict[str, Any]]:
    """Each stored value with its newest review beside it (``review`` None when nobody looked at it)."""
    newest = latest(revisions)
    out = []
    for f in fields:
        r = newest.get(f.path)
        review_ = None
        if r is not None:
            review_ = {
                "action": r.action, "value": r.value, "quote": r.quote, "page": r.page,
                "quote_status": r.quote_status, "found": QuoteStatus(r.quote_status).found if r.quote_status else None,
                "span": [r.span_start, r.span_end] if r.span_start is not None else None,
                "reviewer": r.reviewer, "note": r.note, "at": r.created_at.isoformat(),
                "revisions": sum(1 for x in revisions if x.path == f.path),
            }  # fmt: skip
        out.append({"path": f.path, "value": f.value, "review": review_})
    return out


def current_value(item: dict[str, Any]) -> str | None:
    """The value a team stands behind: the reviewed one, else the model's."""
    return item["review"]["value"] if item["review"] else item["value"]
