"""Reviewing a stored run: accept, edit or reject its values, with evidence, and turn the reviews into labels.

One service for the two faces: ``docanalyst review RUN --set field=value --quote …`` and the web app's review
workspace call ``review``; both read the result back with ``reviewed_fields``. A reviewer's quote is grounded in
the document like the model's (grounding.py, with support.py's rules), so a correction carries evidence that
was checked, not only a claim. ``corrections_dataset`` makes the reviewed runs a labelled dataset for
``docanalyst eval --dataset corrections``: a team's reviews become its test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from docanalyst.document import Document
from docanalyst.errors import ConfigError, DocanalystError
from docanalyst.evaluation.datasets import Dataset, EvalCase, Expected
from docanalyst.grounding import DocumentIndex, Match
from docanalyst.revisions import (
    RevisionRow,
    current_value,
    reviewed_fields,
    reviewed_runs,
    revisions_of,
    save_revisions,
)
from docanalyst.statuses import ReviewAction
from docanalyst.store import FieldRow, Store

ReadDocument = Callable[[str], Document]


@dataclass(frozen=True)
class Correction:
    """One reviewer decision about one value (``path`` as stored: ``parties[0]``, ``governing_law``)."""

    path: str
    action: ReviewAction
    value: str | None = None  # edited: the right value
    quote: str | None = None  # the reviewer's evidence (text selected on the page)
    page: int | None = None


def parse_set(text: str) -> tuple[str, str]:
    """``field=value`` from the command line (the value may contain '=')."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set takes FIELD=VALUE, got '{text}'")
    return path.strip(), value


def review(
    store: Store,
    run_id: int,
    corrections: Sequence[Correction],
    reviewer: str,
    *,
    note: str | None = None,
    read_document: ReadDocument | None = None,
) -> list[RevisionRow]:
    """Store one review of a run (all its corrections in one transaction) and return its rows.
    ``read_document`` reads the run's PDF when a correction brings a quote to check."""
    found = store.get_run(run_id)
    if found is None:
        raise DocanalystError(f"no run with id {run_id}")
    _run, doc, fields = found
    by_path = {f.path: f for f in fields}
    for c in corrections:
        if c.path not in by_path:
            known = ", ".join(by_path) or "none"
            raise ConfigError(f"run {run_id} has no field '{c.path}'; its fields: {known}")
        if c.action is ReviewAction.EDITED and (c.value is None or not c.value.strip()):
            raise ConfigError(f"an edit of '{c.path}' needs a value (to say the document has none, reject it)")
    if not reviewer.strip():
        raise ConfigError("a review needs a reviewer's name (--by NAME)")
    index = None
    if any(c.quote for c in corrections):
        reader = read_document or _read
        index = DocumentIndex(reader(doc.path))
    rows = [_revision(run_id, by_path[c.path], c, reviewer.strip(), note, index) for c in corrections]
    save_revisions(store, rows)
    return rows


def _read(path: str) -> Document:
    from docanalyst.isolation import load_pdf_isolated

    try:
        return load_pdf_isolated(path, timeout_s=300)
    except DocanalystError as exc:
        raise DocanalystError(f"cannot check the quote against the document: {exc}", path=path) from exc


def _revision(
    run_id: int, field: FieldRow, c: Correction, reviewer: str, note: str | None, index: DocumentIndex | None
) -> RevisionRow:
    value = {ReviewAction.ACCEPTED: field.value, ReviewAction.EDITED: c.value, ReviewAction.REJECTED: None}[c.action]
    row = RevisionRow(run_id=run_id, path=c.path, action=c.action, value=value, reviewer=reviewer, note=note)
    if c.quote and index is not None:
        match = index.judge(index.locate(c.quote, c.page), c.quote, value)
        _place(row, c.quote, c.page, match)
    elif c.action is ReviewAction.ACCEPTED:  # the model's evidence, as grounded
        row.quote, row.page, row.quote_status = field.quote, field.page, field.quote_status
        row.span_start, row.span_end = field.span_start, field.span_end
    return row


def _place(row: RevisionRow, quote: str, page: int | None, match: Match) -> None:
    row.quote, row.quote_status = quote, match.status
    row.page = match.page if match.page is not None else page
    row.span_start, row.span_end = match.start, match.end


def _top(path: str) -> str:
    return path.split("[", 1)[0].split(".", 1)[0]


def corrections_dataset(store: Store, template: str | None) -> Dataset:
    """The reviewed runs as a labelled dataset: one case per document (its newest reviewed run). A field is
    labelled when a reviewer touched it; its label is its values after review (a list's untouched items as the
    model gave them: the reviewer saw the list; rejected items and empty values dropped)."""
    runs = reviewed_runs(store, template)
    if not runs:
        scope = f" of the '{template}' template" if template else ""
        raise ConfigError(f"no reviewed runs{scope}: review some with `docanalyst review RUN` or in the web app")
    templates = sorted({run.template for run, _ in runs})
    if len(templates) > 1:
        raise ConfigError(f"reviewed runs of several templates ({', '.join(templates)}): choose one with --template")
    revisions = revisions_of(store, [int(run.id) for run, _ in runs if run.id is not None])
    cases: dict[str, EvalCase] = {}
    for run, doc in runs:
        if doc.sha256 in cases or run.id is None:
            continue
        loaded = store.get_run(run.id)
        fields = loaded[2] if loaded else []
        items = reviewed_fields(fields, revisions[run.id])
        touched = {_top(i["path"]) for i in items if i["review"]}
        labels = {
            name: Expected(tuple(v for i in items if _top(i["path"]) == name and (v := current_value(i))))
            for name in touched
        }
        cases[doc.sha256] = EvalCase(Path(doc.path).name, Path(doc.path), labels)
    return Dataset("corrections", templates[0], Path(store.db_url), tuple(cases.values()))
