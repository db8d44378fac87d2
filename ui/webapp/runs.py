"""Stored runs as the page shows them: one run with its document and fields, history, compare, delete, export.

Exports go through ``docanalyst.exporting`` (the same records and CSV columns as ``docanalyst export``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docanalyst import exporting
from docanalyst.store import DocumentRow, EvaluationItemRow, FieldRow, RunRow, Store
from webapp.evidence import confidence_of, evidence_label, field_warnings

NEXT_STEP = {  # one suggested next step per problem a run can end with
    "partial": "the fields that were kept are below; review the missing ones, or analyse again with a larger profile",
    "truncated": "the answer ran out of room: try a template with fewer fields, or a larger profile",
    "invalid": "analyse again with 'Recompute stored runs', or choose another engine profile",
    "ungrounded": "check the values marked ✗ against the page, and correct them in the review form",
    "failed": "analyse again; if it fails again, restart `docanalyst ui` (the engine may have stopped)",
}


@dataclass
class RunView:
    run: RunRow
    document: DocumentRow
    fields: list[FieldRow]
    revisions: list[Any] = field(default_factory=list)  # reviewers' corrections (revisions.RevisionRow)
    questions: list[RunRow] = field(default_factory=list)  # the questions asked about this document, oldest first

    @property
    def label(self) -> str:
        when = self.run.created_at.strftime("%Y-%m-%d %H:%M")
        name = Path(self.document.path).name
        return f"run {self.run.id} · {name} · {run_kind(self.run)} · {self.run.profile} · {when}"


def run_kind(run: RunRow) -> str:
    """The template, or for a question the question itself (shortened)."""
    question = getattr(run, "question", None)
    if question:
        return "ask: " + (question if len(question) <= 50 else question[:49] + "…")
    return f"{run.template}@v{run.template_version}"


def load_run(store: Store, run_id: int) -> RunView | None:
    from docanalyst.revisions import revisions_of

    loaded = store.get_run(run_id)
    if not loaded:
        return None
    run, doc, fields = loaded
    questions = [q for q in question_runs(store, doc.sha256) if q.id != run.id]
    return RunView(run, doc, fields, revisions_of(store, [run_id])[run_id], questions)


def question_runs(store: Store, sha256: str) -> list[RunRow]:
    """Every stored answer to a question about this document, oldest first: the Q&A thread."""
    from sqlmodel import Session, col, select

    with Session(store.engine) as session:
        stmt = select(RunRow).where(RunRow.document_sha256 == sha256, col(RunRow.question).is_not(None))
        return list(session.exec(stmt.order_by(col(RunRow.id))))


def run_warnings(view: RunView, document_warnings: Iterable[str] = ()) -> list[str]:
    """Plain warnings for one run: failure, ungrounded values, pages without text, the file gone."""
    out: list[str] = []
    if view.run.status not in ("ok", "cached"):
        error = (view.run.error or "no result").replace(view.document.path, Path(view.document.path).name)
        out.append(
            f"run status '{view.run.status}': {error}. Next: {NEXT_STEP.get(view.run.status, NEXT_STEP['failed'])}"
        )
    out.extend(field_warnings(view.fields))
    out.extend(str(w) for w in document_warnings)
    if not Path(view.document.path).exists():
        out.append("the original PDF is no longer on this server: page images cannot be shown")
    return out


def run_record(view: RunView) -> dict[str, Any]:
    """A run as the web app exports it: ``docanalyst export``'s record with its reviews, the questions asked
    about the document and their answers, and the file's name instead of the server's upload path."""
    record = exporting.run_record(view.run, view.document, view.fields, revisions=view.revisions)
    record["document"]["path"] = Path(view.document.path).name
    record["questions"] = [
        {"run_id": q.id, "question": q.question, "answer": (q.result or {}).get("answer"), "status": q.status,
         "created_at": q.created_at.isoformat()}
        for q in view.questions
    ]  # fmt: skip
    return record


def export_json(views: list[RunView]) -> str:
    records = [run_record(v) for v in views]
    return json.dumps(records[0] if len(records) == 1 else records, indent=2, ensure_ascii=False)


def export_csv(views: list[RunView]) -> str:
    """One row per extracted field (a run without fields still gets one row, with its status)."""
    return exporting.to_field_csv([run_record(v) for v in views])


def _quote_counts(store: Store, ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per run: (quotes given, quotes found), in one query for the whole history."""
    from sqlmodel import Session, col, func, select

    counts: dict[int, tuple[int, int]] = {}
    if not ids:
        return counts
    with Session(store.engine) as session:
        stmt = (
            select(col(FieldRow.run_id), func.count(), func.sum(col(FieldRow.quote_found)))
            .where(col(FieldRow.run_id).in_(ids), col(FieldRow.quote_status) != "no_quote")
            .group_by(col(FieldRow.run_id))
        )
        for run_id, n_quotes, n_found in session.exec(stmt):
            counts[int(run_id)] = (int(n_quotes or 0), int(n_found or 0))
    return counts


def history_rows(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    runs = store.list_runs(limit)
    counts = _quote_counts(store, [r.id for r, _ in runs if r.id is not None])
    rows = []
    for run, doc in runs:
        total, found = counts.get(run.id or -1, (0, 0))
        rows.append(
            {
                "run": run.id,
                "when (UTC)": run.created_at.strftime("%Y-%m-%d %H:%M"),
                "document": Path(doc.path).name,
                "pages": doc.pages,
                "template": run_kind(run),
                "profile": run.profile,
                "model": run.model,
                "status": run.status,
                "quotes found": f"{found} of {total}",
            }
        )
    return rows


def delete_run(store: Store, run_id: int) -> bool:
    """Delete a run and its fields in one transaction (and its document row when no run is left). An evaluation
    that scored this run keeps its scores; its item just no longer points at a run."""
    from sqlmodel import Session, col, delete, select, update

    with Session(store.engine) as session, session.begin():
        run = session.get(RunRow, run_id)
        if run is None:
            return False
        sha = run.document_sha256
        session.execute(delete(FieldRow).where(col(FieldRow.run_id) == run_id))
        session.execute(update(EvaluationItemRow).where(col(EvaluationItemRow.run_id) == run_id).values(run_id=None))
        session.delete(run)
        session.flush()
        if session.exec(select(RunRow.id).where(RunRow.document_sha256 == sha)).first() is None:
            doc = session.get(DocumentRow, sha)
            if doc is not None:
                session.delete(doc)
    return True


def compare_rows(a: RunView, b: RunView) -> list[dict[str, Any]]:
    """Field by field, side by side; ``same`` says whether the two values agree."""
    by_a = {f.path: f for f in a.fields}
    by_b = {f.path: f for f in b.fields}
    rows = []
    for path in list(by_a) + [p for p in by_b if p not in by_a]:
        fa, fb = by_a.get(path), by_b.get(path)
        va, vb = (fa.value if fa else None), (fb.value if fb else None)
        row: dict[str, Any] = {"field": path}
        for run_id, f, v in ((a.run.id, fa, va), (b.run.id, fb, vb)):
            row[f"run {run_id} value"] = v or ""
            confidence = confidence_of(f) if f else None
            row[f"run {run_id} confidence"] = None if confidence is None else round(confidence, 2)
            row[f"run {run_id} page"] = f.page if f else None
            row[f"run {run_id} evidence"] = evidence_label(f) if f else ""
        row["same"] = "=" if (va or "") == (vb or "") else "≠"
        rows.append(row)
    return rows
