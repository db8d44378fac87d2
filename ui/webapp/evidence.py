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
    if status == "too_short":
        return "✗ quote too short to prove anything"
    if status == "unsupported":
        return f"✗ the quote (page {f.found_page}) does not say this value" if f.found_page else "✗ unsupported"
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
    if (is_found(f) or f.quote_status == "unsupported") and f.found_page:
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


def label_of(path: str) -> str:
    """A field path as people read it: ``governing_law`` -> "Governing law", ``parties[1]`` -> "Parties 2"."""
    name, _, rest = path.partition("[")
    words = name.replace("_", " ").replace(".", " · ").strip().capitalize()
    index = rest.split("]", 1)[0]
    return f"{words} {int(index) + 1}" if index.isdigit() else words


def unverified(f: Any) -> bool:
    """A value that asserts something without verified evidence: the first ones to check."""
    return bool(f.value) and not is_found(f)


def occurrence(field: Any, text: str | None, page_starts: Sequence[int] | None) -> int | None:
    """Which occurrence on its page the located span is (0 = the first), so only that one is marked."""
    start, end = getattr(field, "span_start", None), getattr(field, "span_end", None)
    if not text or not page_starts or start is None or end is None or field.found_page is None:
        return None
    page_start = page_starts[int(field.found_page) - 1] if 0 < field.found_page <= len(page_starts) else 0
    words = " ".join(text[start:end].split()).casefold()
    before = " ".join(text[page_start:start].split()).casefold()
    return before.count(words) if words else None


def highlight_text(field: Any, text: str | None) -> str | None:
    """What to look for on the page: the document's own words where grounding located the quote (a normalised
    or fuzzy match differs from the model's spelling), else the quote as the model wrote it."""
    start, end = getattr(field, "span_start", None), getattr(field, "span_end", None)
    if field.quote_status == "too_short":  # it proves nothing: marking every ")" on the page would mislead
        return None
    if text and start is not None and end is not None and end > start:  # located (verified or unsupported)
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
