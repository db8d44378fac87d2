"""Evidence by reference: the document's sentences numbered ``[S1]``, ``[S2]``… in the prompt, and the map from
each id back to its page and character span in ``Document.text``.

Why: a quote copied from the document is about half of an answer's tokens, and it must then be searched for
(grounding.py). With ``--evidence refs`` the model cites a value by ids (``"evidence": ["S12", "S13"]``); the
quote, page and span are filled in from this map, so the evidence is the document's own text by construction.

Why sentences and not lines: a marker costs the model's tokens (``[S123] `` is 6-7 SmolLM2 tokens). On the 12
CUAD contracts and the 4 samples, numbering every non-empty line added 37.9 % to the document's tokens, numbering
these sentences 18.5 % (median unit 120-150 characters; a 154-page contract of short table cells costs most).
A sentence is also what a value is usually supported by, so one id is often enough. PDF text breaks lines inside
sentences, so a unit ends at a sentence end (``.;:!?``, whitespace, then an upper-case letter, digit, quote or
bracket) or a blank line, never at a plain line break; a piece shorter than ``UNIT_MIN`` (a section number, a
heading) joins the next one, and a unit longer than ``UNIT_MAX`` characters (tables, lists without stops) is cut
at its line breaks so one id never stands for a whole page. Units never cross pages.

The numbering is a pure function of ``Document.text``: the prompt and the resolver compute the same map, so
nothing but the ids needs to be stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from docanalyst.document import Document
from docanalyst.statuses import QuoteStatus

QUOTES = "quotes"
REFS = "refs"
EVIDENCE_MODES = (QUOTES, REFS)
ID_PATTERN = r"^S[1-9][0-9]{0,6}$"  # the JSON schema's pattern: structured decoding emits only ids of this shape
ID_MAX_LENGTH = 8
EVIDENCE_ITEMS = 3  # ids per value (a profile's max_items narrows it)
UNIT_MAX = 400
UNIT_MIN = 30  # a shorter piece ("1.", "Term.") joins the next one: a marker of its own costs more than it says
_BREAK = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z(\"“'‘0-9])|\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
_ID = re.compile(r"S([1-9][0-9]*)")


@dataclass(frozen=True)
class Unit:
    """One numbered sentence: its id, the page it is on, and its span in ``Document.text``."""

    id: str
    page: int
    start: int
    end: int


@dataclass(frozen=True)
class Numbered:
    """The document text as the refs prompt shows it (markers inserted), and every unit in order."""

    text: str
    units: tuple[Unit, ...]

    def unit(self, ref: str) -> Unit | None:
        """The unit an id names, or None for an id the document does not have (a malformed one included)."""
        match = _ID.fullmatch(ref.strip())
        if match is None:
            return None
        number = int(match[1])
        return self.units[number - 1] if 1 <= number <= len(self.units) else None


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def split_units(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Spans (offset added) of the sentences of one page's text: cut at sentence ends and blank lines, and a
    unit over UNIT_MAX characters again at its line breaks."""
    spans: list[tuple[int, int]] = []
    at = 0
    for cut in [*_BREAK.finditer(text), None]:
        piece = _trimmed(text, at, cut.start() if cut else len(text))
        at = cut.end() if cut else len(text)
        if piece is None:
            continue
        if piece[1] - piece[0] <= UNIT_MAX:
            spans.append(piece)
            continue
        line_at = piece[0]
        for line in [*_LINE.finditer(text, piece[0], piece[1]), None]:
            part = _trimmed(text, line_at, line.start() if line else piece[1])
            line_at = line.end() if line else piece[1]
            if part is not None:
                spans.append(part)
    return [(s + offset, e + offset) for s, e in _joined_short(spans)]


def _joined_short(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each piece under UNIT_MIN characters extended over the next ones (staying within UNIT_MAX)."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and out[-1][1] - out[-1][0] < UNIT_MIN and end - out[-1][0] <= UNIT_MAX:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


@lru_cache(maxsize=4)
def number_units(document: Document) -> Numbered:
    """The numbered view of a document (cached: the prompt, the budget and the resolver all ask for it)."""
    units: list[Unit] = []
    parts: list[str] = []
    at = 0
    for page in document.pages:
        for start, end in split_units(page.text, page.start):
            unit = Unit(f"S{len(units) + 1}", page.number, start, end)
            units.append(unit)
            parts += [document.text[at:start], f"[{unit.id}] "]
            at = start
    parts.append(document.text[at:])
    return Numbered("".join(parts), tuple(units))


@dataclass(frozen=True)
class Resolved:
    """What a value's cited ids stand for: the quote (the document's own text), its page and span."""

    status: QuoteStatus
    quote: str | None = None
    page: int | None = None
    start: int | None = None
    end: int | None = None


def resolve(refs: Sequence[str], document: Document) -> Resolved:
    """The evidence a value's ids cite. The quote is the first run of consecutive known ids (sorted), on the
    first one's page: "S3, S4" is one passage, "S3, S40" keeps S3 (a span over 37 sentences would prove nothing).
    No id at all: ``no_quote``; ids of which none is in the document: ``unknown_reference``."""
    if not refs:
        return Resolved(QuoteStatus.NO_QUOTE)
    numbered = number_units(document)
    known = sorted({u.start: u for ref in refs if (u := numbered.unit(ref)) is not None}.values(), key=_order)
    if not known:
        return Resolved(QuoteStatus.UNKNOWN_REFERENCE)
    first = last = known[0]
    for unit in known[1:]:
        if _order(unit) != _order(last) + 1 or unit.page != first.page:
            break
        last = unit
    return Resolved(QuoteStatus.CITED, document.text[first.start : last.end], first.page, first.start, last.end)


def _order(unit: Unit) -> int:
    return int(unit.id[1:])
