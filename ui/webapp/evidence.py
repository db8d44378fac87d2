"""What a stored value's evidence means in plain words, its confidence, and the rows of the results table.

These are pure functions of the stored rows (no Streamlit), so the page and the tests read the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from docanalyst.confidence import below

# "cited": --evidence refs, the quote is the cited sentences' own text; "found"/"other_page": databases before 0002
FOUND_STATUSES = ("exact", "normalised", "fuzzy", "cited", "found", "other_page")
MATCH_WORDS = {"exact": "exact match", "normalised": "match after normalising", "fuzzy": "close match",
               "cited": "cited sentence"}  # fmt: skip


def is_found(f: Any) -> bool:
    return f.quote_status in FOUND_STATUSES


def on_other_page(f: Any) -> bool:
    return is_found(f) and f.found_page is not None and f.page is not None and f.found_page != f.page


def evidence_label(f: Any) -> str:
    """One plain phrase for a field's evidence: found where the model said, elsewhere, or nowhere."""
    status = f.quote_status
    if status == "no_quote":
        return "– no quote given"
    if status == "not_found":
        return "✗ quote not found in the document"
    if status not in FOUND_STATUSES:
        return str(status)
    how = MATCH_WORDS.get(status, "found")
    score = getattr(f, "score", None)
    if status == "fuzzy" and score is not None:
        how += f" ({score:.0f}%)"
    if status == "other_page" or on_other_page(f):
        return f"⚠ {how} on page {f.found_page}, not the cited page {f.page}"
    if f.page is None:
        return f"⚠ {how} on page {f.found_page} (no page cited)"
    return f"{'≈' if status == 'fuzzy' else '✓'} {how} on the cited page"


def evidence_page(f: Any) -> int | None:
    """Which page to show for a field: where the quote really is, else the cited page."""
    if is_found(f) and f.found_page:
        return int(f.found_page)
    return int(f.page) if f.page is not None else None


def confidence_of(f: Any) -> float | None:
    """The value's confidence in [0, 1]; None for a run stored before confidences existed."""
    value = getattr(f, "confidence", None)
    return None if value is None else float(value)


def shown_fields(fields: Sequence[Any], minimum: float | None) -> list[Any]:
    """The fields at or above ``minimum`` confidence: the same rule as ``--min-confidence`` on the command line
    (a value without a score is never hidden, since nothing says it is doubtful)."""
    return [f for f in fields if not below(confidence_of(f), minimum)]


def field_rows(fields: Iterable[Any]) -> list[dict[str, Any]]:
    """The results table: one row per extracted value."""
    rows = []
    for f in fields:
        confidence = confidence_of(f)
        rows.append(
            {
                "field": f.path,
                "value": f.value or "",
                "confidence": None if confidence is None else round(confidence, 2),
                "page": f.page,
                "evidence": evidence_label(f),
                "quote": f.quote or "",
            }
        )
    return rows


def highlight_text(field: Any, text: str | None) -> str | None:
    """What to look for on the page: the document's own words where grounding located the quote (a normalised
    or fuzzy match differs from the model's spelling), else the quote as the model wrote it."""
    start, end = getattr(field, "span_start", None), getattr(field, "span_end", None)
    if text and is_found(field) and start is not None and end is not None and end > start:
        return text[start:end]
    return field.quote


def field_warnings(fields: Sequence[Any]) -> list[str]:
    """Plain warnings about a run's values: quotes not found, on another page, missing; nothing returned."""
    out: list[str] = []
    valued = [f for f in fields if f.value]
    not_found = [f for f in fields if f.quote_status == "not_found"]
    other = [f for f in fields if on_other_page(f)]
    unquoted = [f for f in valued if f.quote_status == "no_quote"]
    if not_found:
        names = ", ".join(f.path for f in not_found[:8]) + (" …" if len(not_found) > 8 else "")
        out.append(
            f"{len(not_found)} of {len(fields)} quote(s) were not found in the document: treat those values as "
            f"unverified ({names})"
        )
    if other:
        out.append(f"{len(other)} quote(s) are on a different page than the model cited")
    if unquoted:
        out.append(f"{len(unquoted)} value(s) have no supporting quote")
    if fields and not valued:
        out.append("the model returned no values for this document")
    return out
