"""Stored runs as plain records and as JSON / JSONL / CSV text: one definition for the CLI and the web app.

Every value carries its confidence (confidence.py; empty for runs stored before there were any). With
``min_confidence`` a record leaves out the values below it by ``confidence.below``, the one rule the CLI's
``--min-confidence`` and the web app share: the per-value rows (``fields``, the CSV rows, the wide CSV's cells)
drop them and the record lists their paths under ``hidden``. The ``result`` stays the model's answer as stored,
each value with its confidence beside it: a record never silently rewrites what the model said.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from docanalyst.confidence import below
from docanalyst.revisions import RevisionRow, reviewed_fields
from docanalyst.store import DocumentRow, FieldRow, RunRow

FIELD_COLUMNS = ["path", "value", "confidence", "quote", "page", "quote_found", "quote_status", "found_page"]
REVIEW_COLUMNS = ["review_action", "reviewed_value", "review_quote", "reviewer", "reviewed_at"]
RUN_COLUMNS = ["run_id", "document", "sha256", "template", "profile", "model", "status"]


def run_record(
    run: RunRow,
    doc: DocumentRow,
    fields: Sequence[FieldRow] | None,
    min_confidence: float | None = None,
    revisions: Sequence[RevisionRow] = (),
) -> dict[str, Any]:
    """Everything stored about one run; ``fields`` None leaves the per-field rows out (listings).
    ``min_confidence``: values below it are left out of ``fields`` and named in ``hidden`` (module doc).
    ``revisions``: reviewers' corrections; each field then carries its newest ``review`` beside the model's value,
    which stays as the model gave it."""
    data: dict[str, Any] = {
        "run_id": run.id,
        "created_at": run.created_at.isoformat(),
        "document": {"sha256": doc.sha256, "path": doc.path, "pages": doc.pages, "tokens": doc.tokens},
        "template": run.template,
        "template_version": run.template_version,
        "template_sha256": run.template_sha256,
        "schema_hash": run.schema_hash,
        "profile": run.profile,
        "model": run.model,
        "sampling": json.loads(run.sampling_json),
        "status": run.status,
        "missing": run.missing,  # a partial run's undelivered fields
        "error": run.error,
        "attempts": run.attempts,
        "question": run.question,
        "result": run.result,
        "grounding": {"quotes": run.quotes_total, "found": run.quotes_found, "rate": run.grounding_rate},
        "usage": {
            "prompt_tokens": run.prompt_tokens,
            "cached_tokens": run.cached_tokens,
            "completion_tokens": run.completion_tokens,
        },
        "timings": run.timings,
        "docanalyst_version": run.docanalyst_version,
    }
    if fields is not None:
        if min_confidence is not None:
            data["min_confidence"] = min_confidence
            data["hidden"] = [f.path for f in fields if below(f.confidence, min_confidence)]
            fields = [f for f in fields if not below(f.confidence, min_confidence)]
        data["fields"] = _field_records(fields, revisions)
    return data


def _field_records(fields: Sequence[FieldRow], revisions: Sequence[RevisionRow]) -> list[dict[str, Any]]:
    """Each stored value as exported: the model's value and its grounding, with its newest review beside it."""
    reviews = {item["path"]: item["review"] for item in reviewed_fields(fields, revisions)}
    return [
        {
            "path": f.path,
            "value": f.value,
            "confidence": f.confidence,
            "quote": f.quote,
            "page": f.page,
            "quote_found": f.quote_found,
            "quote_status": f.quote_status,
            "found_page": f.found_page,
            "page_match": f.page_match,
            "span": [f.span_start, f.span_end] if f.span_start is not None else None,
            "score": f.score,
            "review": reviews.get(f.path),
        }
        for f in fields
    ]


def _head(record: dict[str, Any]) -> list[Any]:
    doc = record["document"]
    return [record["run_id"], doc["path"], doc["sha256"], record["template"], record["profile"], record["model"],
            record["status"]]  # fmt: skip


def to_json(records: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(records), ensure_ascii=False, indent=2) + "\n"


def to_jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def to_field_csv(records: Sequence[dict[str, Any]]) -> str:
    """One row per extracted field; a run without fields (failed, truncated) still gets a row with its status."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*RUN_COLUMNS, "field", *FIELD_COLUMNS[1:], *REVIEW_COLUMNS])
    for record in records:
        fields = record.get("fields") or []
        if not fields:
            writer.writerow([*_head(record), *([""] * (len(FIELD_COLUMNS) + len(REVIEW_COLUMNS)))])
        for f in fields:
            cells = [_blank(f[c]) if c == "confidence" else f[c] for c in FIELD_COLUMNS]
            writer.writerow([*_head(record), *cells, *_review_cells(f.get("review"))])
    return buffer.getvalue()


def _review_cells(review: dict[str, Any] | None) -> list[Any]:
    """The newest review of a value in CSV cells (empty when nobody reviewed it)."""
    if not review:
        return [""] * len(REVIEW_COLUMNS)
    return [review["action"], review["value"] or "", review["quote"] or "", review["reviewer"], review["at"]]


def to_wide_csv(records: Sequence[dict[str, Any]]) -> str:
    """One row per run; for each field path a value column (the model's), plus its confidence, its page, whether
    the quote was found and the reviewed value (a value hidden by ``min_confidence`` leaves its cells empty)."""
    paths: list[str] = []
    for record in records:
        for f in record.get("fields") or []:
            if f["path"] not in paths:
                paths.append(f["path"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    heads = (c for p in paths for c in (p, f"{p}.confidence", f"{p}.page", f"{p}.quote_found", f"{p}.reviewed"))
    writer.writerow([*RUN_COLUMNS, "error", *heads])
    for record in records:
        by_path = {f["path"]: f for f in record.get("fields") or []}
        row = [*_head(record), record["error"] or ""]
        for p in paths:
            f = by_path.get(p)
            reviewed = (f.get("review") or {}).get("action") and f["review"]["value"] if f else None
            cells = [f["value"], _blank(f["confidence"]), f["page"], f["quote_found"], reviewed or ""] if f else None
            row += cells or [""] * 5
        writer.writerow(row)
    return buffer.getvalue()


def _blank(confidence: float | None) -> Any:
    """A confidence in a CSV cell: empty for none (runs stored before confidences), never the word "None"."""
    return "" if confidence is None else confidence
