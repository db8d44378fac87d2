"""Check every quote against the document: where is it, how exactly does it match, is it on the cited page?

Levels, tried in order, each on the cited page first and then on the whole document:
- ``exact``: the quote appears verbatim in the canonical text.
- ``normalised``: equal after Unicode NFKC, case folding, unified quotes and dashes, words re-joined across
  end-of-line hyphens, and whitespace collapsed (PDF text breaks lines where the model does not). CJK text
  often comes out of PDFs with a space or newline between characters, so whitespace is also dropped
  entirely between CJK characters.
- ``fuzzy``: rapidfuzz's best partial alignment scores at least ``FUZZY_MIN`` (OCR noise, a dropped word), for
  quotes of at least ``FUZZY_MIN_CHARS`` normalised characters.
- ``not_found``.
Every located quote gets its character span in ``Document.text`` and the page that span is on.

At every level a match starts and ends on word boundaries: "Ties" is not found in "parties", "Date" not in "dated",
"$1,000" not in "$1,000,000". Scripts written without spaces (CJK, Thai, ...) are the exception: there every
character is a word. rapidfuzz aligns characters, not words, so its span is widened (and narrowed) to whole words
and scored again; otherwise "Laws of Mars." would be found at 92 in "the laws of Maryland". Below
``FUZZY_MIN_CHARS`` one edit already changes a word, so short quotes must match exactly or after normalisation.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

from rapidfuzz import fuzz

from docanalyst import support
from docanalyst.document import Document
from docanalyst.evidence import resolve
from docanalyst.schemas import iter_cited
from docanalyst.statuses import GroundingVerdict, QuoteStatus

Status = QuoteStatus  # the name grounding has always used
FUZZY_MIN = 90.0
FUZZY_MIN_CHARS = 20
# The run's verdict (GroundingSummary.verdict): shares of its asserted values with verified evidence.
VERDICT_GROUNDED = 0.8
VERDICT_WEAK = 0.5
_FOUND = tuple(s for s in QuoteStatus if s.found)
_TRANSLATE = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-",
                            "‐": "-", "‑": "-", "\u00ad": ""})  # fmt: skip
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")


# Scripts without spaces between words: any character may start or end a quote.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _is_cjk(ch: str) -> bool:
    return bool(_CJK.match(ch))


def _joined(left: str, right: str) -> bool:
    """Whether two neighbouring characters belong to one word, so that no match may begin or end between them."""
    if _UNSPACED.match(left) or _UNSPACED.match(right):
        return False
    return _wordlike(left) and _wordlike(right)


def _wordlike(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch).startswith("M")  # marks: Arabic vowels, Devanagari signs


def _starts_word(text: str, start: int) -> bool:
    """Whether a match may begin at ``start``: not inside a word, nor inside a number like 1,000.50."""
    if start <= 0 or start >= len(text):
        return True
    if _joined(text[start - 1], text[start]):
        return False
    return not (_in_number(text, start - 1) or _in_number(text, start))


def _ends_word(text: str, end: int) -> bool:
    """Whether a match may end at ``end`` (exclusive): not inside a word or a number."""
    if end <= 0 or end >= len(text):
        return True
    if _joined(text[end - 1], text[end]):
        return False
    return not (_in_number(text, end - 1) or _in_number(text, end))


def _in_number(text: str, at: int) -> bool:
    """Whether ``text[at]`` is a point or comma between two digits (1,000.50 is one number)."""
    return 0 < at < len(text) - 1 and text[at] in ".," and text[at - 1].isdigit() and text[at + 1].isdigit()


def on_word_boundaries(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` neither begins nor ends inside a word or inside a number like 1,000.50."""
    return _starts_word(text, start) and _ends_word(text, end)


def find_word(text: str, needle: str, start: int = 0, end: int | None = None) -> int:
    """``text.find(needle, start, end)``, skipping occurrences that begin or end inside a word."""
    at = text.find(needle, start, end)
    while at >= 0 and not on_word_boundaries(text, at, at + len(needle)):
        at = text.find(needle, at + 1, end)
    return at


def _whole_words(needle: str, text: str, start: int, end: int) -> tuple[float, int, int] | None:
    """Re-score a character alignment on whole words: the span widened to the words (or numbers) it cuts, and
    narrowed to those it holds entirely; the better of the two if it still reaches FUZZY_MIN."""
    wide_start, wide_end = start, end
    while wide_start > 0 and not _starts_word(text, wide_start):
        wide_start -= 1
    while wide_end < len(text) and not _ends_word(text, wide_end):
        wide_end += 1
    narrow_start, narrow_end = start, end
    while narrow_start < narrow_end and (not _starts_word(text, narrow_start) or text[narrow_start].isspace()):
        narrow_start += 1
    while narrow_end > narrow_start and (not _ends_word(text, narrow_end) or text[narrow_end - 1].isspace()):
        narrow_end -= 1
    best: tuple[float, int, int] | None = None
    for s, e in ((wide_start, wide_end), (narrow_start, narrow_end)):
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        score = fuzz.ratio(needle, text[s:e])
        if score >= FUZZY_MIN and (best is None or score > best[0]):
            best = (score, s, e)
    return best


def normalise_with_map(text: str) -> tuple[str, list[int]]:
    """Normalised text and, for each of its characters, the offset of the source character it came from."""
    out: list[str] = []
    where: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and i + 1 < n and text[i + 1] == "\n" and i > 0 and text[i - 1].isalnum():
            j = i + 2  # "inter-\nnational" -> "international"
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j].isalnum():
                i = j
                continue
        if ch.isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            prev = out[-1] if out else ""
            nxt = text[j] if j < n else ""
            if out and j < n and not (_is_cjk(prev) and _is_cjk(nxt)):
                out.append(" ")
                where.append(i)
            i = j
            continue
        for piece in unicodedata.normalize("NFKC", ch).translate(_TRANSLATE).casefold():
            out.append(piece)
            where.append(i)
        i += 1
    return "".join(out), where


def normalise(text: str) -> str:
    return normalise_with_map(text)[0]


@dataclass(frozen=True)
class Match:
    status: Status
    start: int | None = None  # span in Document.text
    end: int | None = None
    page: int | None = None  # the page that span is on
    score: float | None = None


class DocumentIndex:
    """Normalised views of a document, built once and reused for every quote."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.text = document.text
        self._whole: tuple[str, list[int]] | None = None  # built only when a quote is not found verbatim
        self._page_norm: dict[int, tuple[str, list[int]]] = {}

    def _document(self) -> tuple[str, list[int]]:
        if self._whole is None:
            self._whole = normalise_with_map(self.text)
        return self._whole

    def _page(self, number: int) -> tuple[str, list[int]]:
        if number not in self._page_norm:
            page = self.document.page(number)
            norm, where = normalise_with_map(page.text)
            self._page_norm[number] = (norm, [page.start + w for w in where])
        return self._page_norm[number]

    def _span(self, where: list[int], start: int, end: int) -> tuple[int, int]:
        return where[start], where[end - 1] + 1

    def locate(self, quote: str, page: int | None) -> Match:
        quote = quote.strip()
        if not quote:
            return Match(QuoteStatus.NO_QUOTE)
        cited = self.document.page(page) if page is not None and 1 <= page <= self.document.page_count else None
        # exact
        if cited is not None:
            at = find_word(self.text, quote, cited.start, cited.end)
            if at >= 0:
                return self._match(QuoteStatus.EXACT, at, at + len(quote))
        at = find_word(self.text, quote)
        if at >= 0:
            return self._match(QuoteStatus.EXACT, at, at + len(quote))
        # normalised
        needle = normalise(quote)
        if not needle:
            return Match(QuoteStatus.NO_QUOTE)
        if cited is not None:
            norm, where = self._page(cited.number)
            at = find_word(norm, needle)
            if at >= 0:
                return self._match(QuoteStatus.NORMALISED, *self._span(where, at, at + len(needle)))
        norm, where = self._document()
        at = find_word(norm, needle)
        if at >= 0:
            return self._match(QuoteStatus.NORMALISED, *self._span(where, at, at + len(needle)))
        return self._fuzzy(needle, cited.number if cited is not None else None)

    def _fuzzy(self, needle: str, cited: int | None) -> Match:
        """Cited page first, then every page; the best whole-word alignment wins."""
        if len(needle) < FUZZY_MIN_CHARS:
            return Match(QuoteStatus.NOT_FOUND)
        best: tuple[float, int, int] | None = None
        order = [cited] if cited is not None else []
        order += [p.number for p in self.document.pages if p.number not in order]
        for number in order:
            norm, where = self._page(number)
            if not norm:
                continue
            found = fuzz.partial_ratio_alignment(needle, norm, score_cutoff=FUZZY_MIN)
            if found is None or found.dest_end <= found.dest_start:
                continue
            words = _whole_words(needle, norm, found.dest_start, found.dest_end)
            if words is not None and (best is None or words[0] > best[0]):
                best = (words[0], *self._span(where, words[1], words[2]))
                if number == order[0] and words[0] >= 99.9:
                    break
        if best is not None:
            return self._match(QuoteStatus.FUZZY, best[1], best[2], score=round(best[0], 1))
        return Match(QuoteStatus.NOT_FOUND)

    def judge(self, match: Match, quote: str | None, value: str | None) -> Match:
        """A located quote as evidence (support.py): ``too_short`` (no span: it proves nothing, so nothing is
        highlighted) or ``unsupported`` (the span stays: the quote is there, it just does not say the value)."""
        if match.status in (QuoteStatus.NO_QUOTE, QuoteStatus.UNKNOWN_REFERENCE):
            return match
        if match.status is not QuoteStatus.CITED and not support.informative(quote):
            return Match(QuoteStatus.TOO_SHORT)
        if not match.status.found or match.start is None or match.end is None:
            return match
        number = self.document.page_at(match.start)
        page = self.document.page(number) if number is not None else None
        bounds = (page.start, page.end) if page is not None else (0, len(self.text))
        nearby = support.window(self.text, match.start, match.end, *bounds)
        if not support.supports(value, nearby):
            return replace(match, status=QuoteStatus.UNSUPPORTED)
        return match

    def _match(self, status: Status, start: int, end: int, score: float | None = None) -> Match:
        return Match(status, start, end, self.document.page_at(start), 100.0 if score is None else score)


@dataclass(frozen=True)
class GroundedField:
    path: str
    value: str | None
    quote: str | None
    page: int | None  # the page the model cited
    status: Status
    found_page: int | None = None  # the page the quote is really on
    span_start: int | None = None
    span_end: int | None = None
    score: float | None = None  # the quote's match score (grounding)
    # The value's confidence in [0, 1] from the engine's token probabilities (confidence.py); None when the engine
    # gave none or the run was stored before confidences existed.
    confidence: float | None = None

    @property
    def quote_found(self) -> bool:
        return self.status in _FOUND

    @property
    def page_match(self) -> bool:
        return self.quote_found and self.found_page == self.page

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "quote_found": self.quote_found, "page_match": self.page_match}


def ground(
    document: Document, result: dict[str, Any], confidences: dict[str, float] | None = None
) -> list[GroundedField]:
    """Ground every cited value of a validated result (a ``model_dump()``), in field order; ``confidences``
    (by field path, from ``confidence.field_confidences``) is carried onto each field."""
    index = DocumentIndex(document)
    confidences = confidences or {}
    out: list[GroundedField] = []
    for path, cited in iter_cited(result):
        if isinstance(cited.get("evidence"), list):  # --evidence refs: grounded by reference, not searched for
            ref = resolve(cited["evidence"], document)
            status = ref.status
            if status.found and ref.start is not None and ref.end is not None:
                status = index.judge(Match(status, ref.start, ref.end, ref.page), ref.quote, cited.get("value")).status
            out.append(
                GroundedField(path, cited.get("value"), ref.quote, ref.page, status, ref.page, ref.start, ref.end,
                              100.0 if ref.quote else None, confidences.get(path))
            )  # fmt: skip
            continue
        quote, page = cited.get("quote"), cited.get("page")
        match = index.locate(quote, page) if quote else Match(QuoteStatus.NO_QUOTE)
        match = index.judge(match, quote, cited.get("value"))
        out.append(
            GroundedField(path, cited.get("value"), quote, page, match.status, match.page, match.start, match.end,
                          match.score, confidences.get(path))
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class GroundingSummary:
    quotes: int  # values that came with a quote
    found: int  # quotes verified: located in the document (any level), informative, and supporting their value
    on_cited_page: int
    not_found: int  # quotes not verified: not found, too short or unsupported
    too_short: int = 0
    unsupported: int = 0
    asserted: int = 0  # values that claim something (not null, not a bare "yes")
    verified: int = 0  # of those, the ones whose quote is verified

    @property
    def rate(self) -> float | None:
        """Share of quotes verified; None when the model gave no quote at all."""
        return round(self.found / self.quotes, 4) if self.quotes else None

    @property
    def verdict(self) -> GroundingVerdict:
        """The run's evidence in one word (statuses.GroundingVerdict), from the share of asserted values verified."""
        if not self.asserted:
            return GroundingVerdict.GROUNDED
        share = self.verified / self.asserted
        if share >= VERDICT_GROUNDED:
            return GroundingVerdict.GROUNDED
        return GroundingVerdict.WEAK if share >= VERDICT_WEAK else GroundingVerdict.UNGROUNDED

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate, "verdict": str(self.verdict)}


def summarise(fields: list[GroundedField]) -> GroundingSummary:
    quoted = [f for f in fields if f.status != QuoteStatus.NO_QUOTE]
    found = [f for f in quoted if f.quote_found]
    asserted = [f for f in fields if support.asserts(f.value)]
    return GroundingSummary(
        len(quoted), len(found), sum(f.page_match for f in found), len(quoted) - len(found),
        too_short=sum(f.status == QuoteStatus.TOO_SHORT for f in quoted),
        unsupported=sum(f.status == QuoteStatus.UNSUPPORTED for f in quoted),
        asserted=len(asserted), verified=sum(f.quote_found for f in asserted),
    )  # fmt: skip


def annotate(result: dict[str, Any], fields: list[GroundedField]) -> dict[str, Any]:
    """Copy of the result with the grounding of every quote beside it."""
    annotated = copy.deepcopy(result)
    by_path = {f.path: f for f in fields}
    for path, cited in iter_cited(annotated):
        field = by_path.get(path)
        if field is not None:
            if isinstance(cited.get("evidence"), list):  # refs: the stored leaf keeps the shape quotes give it
                cited["quote"], cited["page"] = field.quote, field.page
            cited["quote_status"] = field.status
            cited["quote_found"] = field.quote_found
            cited["found_page"] = field.found_page
            cited["span"] = [field.span_start, field.span_end] if field.span_start is not None else None
            cited["confidence"] = field.confidence
    return annotated


def resolve_evidence(result: dict[str, Any], document: Document) -> dict[str, Any]:
    """A copy of a validated ``--evidence refs`` result in the shape every stored result has: each value's
    ``evidence`` ids resolved to ``quote`` (the cited sentences' text, as in ``Document.text``) and ``page``;
    the ids stay beside them. ``ground`` resolves the same ids to the span and the status (``cited``, or
    ``unknown_reference``), and ``annotate`` fills quote and page itself, so calling this is only needed where a
    result is shown before it is annotated. A quotes result comes back unchanged."""
    resolved = copy.deepcopy(result)
    for _path, cited in iter_cited(resolved):
        if isinstance(cited.get("evidence"), list):
            ref = resolve(cited["evidence"], document)
            cited["quote"], cited["page"] = ref.quote, ref.page
    return resolved
