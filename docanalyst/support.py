"""Whether a located quote is evidence for its value: informative enough, and saying what the value says.

grounding.py answers "is this quote in the document?". That alone can be fooled: a model that quotes ")" or
"USD" finds its quote on the page every time, and a model that writes "March 3, 2025" with a quote about the
notice period has a real quote that proves nothing about the date. Two rules sit on top of the location:

- **Informative**: at least ``MIN_QUOTE_CHARS`` normalised characters and ``MIN_QUOTE_WORDS`` words (scripts
  written without spaces: ``MIN_UNSPACED_CHARS`` characters). Below that a quote is ``too_short``, found or not.
- **Supports its value**: the value is found in the quote or within ``WINDOW_CHARS`` of it on the same page, by
  the value's kind: a date as a date (``2025-03-03`` is supported by "the 3rd day of March, 2025"), a duration
  as a duration ("thirty (30) days" = "30 days"), a jurisdiction by name ("State of New York"), a name by its
  key words ("Northwind Ltd" by "NORTHWIND LIMITED"), any other text by its words (``MIN_WORD_SHARE`` of them).
  Otherwise the quote is ``unsupported``. A value that asserts nothing textual (null, "none", "yes") needs no
  support.

The thresholds were chosen on the corpus (docs/GROUNDING.md: CUAD's human-selected excerpts and the embedded
model's stored answers, before and after); ``bench/support_eval.py`` measures them again.
"""

from __future__ import annotations

import re

from docanalyst.evaluation.normalize import (
    is_null,
    name_key,
    parse_dates,
    parse_durations,
    parse_jurisdictions,
    plain,
)

MIN_QUOTE_CHARS = 8
MIN_QUOTE_WORDS = 2
MIN_UNSPACED_CHARS = 4
WINDOW_CHARS = 200
MIN_WORD_SHARE = 0.6
# Values that answer yes/no or "present" (the presence kind): nothing in them to find in the text.
AFFIRMATIVE = frozenset({"yes", "true", "present", "y"})
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_NUMBER_SEPARATORS = re.compile(r"(?<=\d)[,\s](?=\d{3}\b)")
_STOP = frozenset(["a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"])


def informative(quote: str | None) -> bool:
    """Long enough to prove something: ")" and "USD" occur in every contract."""
    text = plain(quote or "")
    if _UNSPACED.search(text):
        return len(text.replace(" ", "")) >= MIN_UNSPACED_CHARS
    return len(text) >= MIN_QUOTE_CHARS and len(text.split()) >= MIN_QUOTE_WORDS


def asserts(value: str | None) -> bool:
    """Whether a value claims something the text must show (not null, not a bare yes)."""
    return not is_null(value) and plain(value or "") not in AFFIRMATIVE


def supports(value: str | None, text: str) -> bool:
    """Whether ``text`` (a quote with its neighbourhood) says what ``value`` says."""
    if not asserts(value):
        return True
    assert value is not None
    if _contains(plain(text), plain(value)):
        return True
    dates = parse_dates(value)
    if dates:
        found = parse_dates(text)
        return all(any(d.matches(f) or f.matches(d) for f in found) for d in dates)
    durations = parse_durations(value)
    if durations:
        return set(durations) <= set(parse_durations(text))
    places = parse_jurisdictions(value)
    if places:
        return set(places) <= set(parse_jurisdictions(text))
    return _words_supported(value, text)


def _contains(haystack: str, needle: str) -> bool:
    """``needle`` inside ``haystack`` on word boundaries (both already ``plain``), numbers without separators."""
    haystack, needle = _NUMBER_SEPARATORS.sub("", haystack), _NUMBER_SEPARATORS.sub("", needle)
    if not needle:
        return True
    if _UNSPACED.search(needle):
        return needle.replace(" ", "") in haystack.replace(" ", "")
    return f" {needle} " in f" {haystack} "


def _words_supported(value: str, text: str) -> bool:
    """Names by their key words (legal forms and defined terms aside), other text by its content words."""
    have = set(_NUMBER_SEPARATORS.sub("", plain(text)).split())
    key = name_key(value).split()
    if key and all(word in have for word in key):
        return True
    words = [w for w in _NUMBER_SEPARATORS.sub("", plain(value)).split() if w not in _STOP]
    if not words:
        return True
    if len(words) <= 2:
        return all(w in have for w in words)
    return sum(w in have for w in words) / len(words) >= MIN_WORD_SHARE


def window(text: str, start: int, end: int, page_start: int, page_end: int) -> str:
    """The quote's span with ``WINDOW_CHARS`` either side, inside its page."""
    return text[max(page_start, start - WINDOW_CHARS) : min(page_end, end + WINDOW_CHARS)]
