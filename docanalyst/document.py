"""The document model: pages, the one canonical text, and character offsets into it.

Why a canonical text: the model sees exactly ``Document.text``; every page's ``start``/``end`` point into
it, so a quote found in the text maps back to a page without guessing. No PDF library is imported here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

PAGE_HEADER = "[Page {number}]\n"
PAGE_SEPARATOR = "\n\n"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MANY_NEWLINES = re.compile(r"\n{3,}")
# Hebrew and Arabic presentation forms (contextual glyph shapes some PDFs map to): what a user copies from a
# viewer, and what the model knows, is the base letters, so these become their NFKC letters (U+FEFF excluded).
_PRESENTATION_FORMS = re.compile(r"[\ufb1d-\ufdff\ufe70-\ufefe]+")


def safe_text(text: str) -> str:
    """Valid Unicode only: broken fonts can yield lone surrogates, which no UTF-8 output can carry."""
    return text.encode("utf-8", "replace").decode("utf-8")


def clean_page_text(text: str) -> str:
    """Light normalisation that keeps words, spacing and line structure: no control bytes, no runs of blank
    lines, base letters for Hebrew/Arabic presentation forms. Page offsets are assigned after this, so they
    always point into the cleaned text. (Grounding normalises whitespace itself, so nothing here needs to.)"""
    text = safe_text(text)
    text = _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


@dataclass(frozen=True)
class PageContent:
    """What the PDF reader hands over for one page (before offsets are assigned)."""

    text: str
    has_text_layer: bool = True
    tables: int = 0
    ocr: bool = False


@dataclass(frozen=True)
class Page:
    number: int  # 1-based, as people cite pages
    text: str
    start: int  # offset of the page body in Document.text
    end: int
    has_text_layer: bool = True
    tables: int = 0
    ocr: bool = False


@dataclass(frozen=True)
class Document:
    path: str
    sha256: str
    pages: tuple[Page, ...]
    text: str
    title: str | None = None
    author: str | None = None
    encrypted: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        """Short, stable id for messages; the full sha256 is the database key."""
        return self.sha256[:12]

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def pages_without_text(self) -> list[int]:
        return [p.number for p in self.pages if not p.has_text_layer]

    @property
    def char_count(self) -> int:
        return sum(len(p.text) for p in self.pages)

    def page(self, number: int) -> Page:
        if not 1 <= number <= len(self.pages):
            raise IndexError(f"page {number} is outside 1..{len(self.pages)}")
        return self.pages[number - 1]

    def page_at(self, offset: int) -> int | None:
        """The page whose body contains this offset of the canonical text."""
        for page in self.pages:
            if page.start <= offset < page.end or (page.start == page.end == offset):
                return page.number
        return None


def build_document(
    contents: Sequence[PageContent],
    *,
    path: str,
    sha256: str,
    title: str | None = None,
    author: str | None = None,
    encrypted: bool = False,
    warnings: Sequence[str] = (),
) -> Document:
    """Join page texts into the canonical text, recording where each page body starts and ends."""
    parts: list[str] = []
    pages: list[Page] = []
    offset = 0
    for number, content in enumerate(contents, start=1):
        header = PAGE_HEADER.format(number=number)
        body = clean_page_text(content.text)
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        parts.append(header)
        offset += len(header)
        start = offset
        parts.append(body)
        offset += len(body)
        pages.append(Page(number, body, start, offset, content.has_text_layer, content.tables, content.ocr))
    all_warnings = list(warnings)
    missing = [p.number for p in pages if not p.has_text_layer]
    if missing:
        all_warnings.append(no_text_warning(missing, len(pages)))
    return Document(
        path=path,
        sha256=sha256,
        pages=tuple(pages),
        text="".join(parts),
        title=title or None,
        author=author or None,
        encrypted=encrypted,
        warnings=tuple(all_warnings),
    )


def no_text_warning(missing: Sequence[int], total: int) -> str:
    shown = ", ".join(str(n) for n in missing[:20]) + (" …" if len(missing) > 20 else "")
    return (
        f"no text layer on {len(missing)} of {total} page(s) ({shown}): "
        "scanned images with no OCR text, so the model cannot see what is on them"
    )


# ---- unreadable text layers ---------------------------------------------------------------------------------
# Type3 fonts and fonts with no or a shifted ToUnicode map give a text layer that renders fine but reads as
# private-use code points, U+FFFD, control codes or letters mapped to the wrong letters. Two cheap tests:
# - odd characters: at least UNREADABLE_ODD_SHARE of the non-space characters are private use (U+E000-F8FF,
#   planes 15-16), U+FFFD, control codes, surrogates or unassigned;
# - Latin words of implausible shape (among words of 3+ Latin letters, all-capital words of up to 5 letters,
#   acronyms, left out): no vowel (a e i o u y, accents ignored), a run of 5+ consonants, or a capital after
#   the first letter of a word not all in capitals. Prose has 0-3 % such words (at most 22 % on formula-heavy
#   pages of the corpus); letters mapped to other letters give 30-70 %. A page needs UNREADABLE_MIN_WORDS
#   such words to be judged, and is unreadable when at least UNREADABLE_WORD_SHARE of them look implausible,
#   or UNREADABLE_WORD_SHARE_QUIET while under 3 % of its words are common function words of English, German,
#   French, Spanish, Italian, Portuguese or Dutch (real prose in those languages has 8-47 %).
UNREADABLE_ODD_SHARE = 0.30
UNREADABLE_SAMPLE_CHARS = 20_000  # a full page of small print has about 6,000
UNREADABLE_MIN_WORDS = 20
UNREADABLE_WORD_SHARE = 0.25
UNREADABLE_WORD_SHARE_QUIET = 0.12
_FUNCTION_WORD_SHARE = 0.03
_FUNCTION_WORD_LIST = (
    "the of and to in a is that for it as with on by be this are or from at an not which was have has shall any "
    "der die das und zu den von mit ist des sich nicht auf ein eine dem fur im es als auch "
    "le la les de et en un une du que est pour dans par sur au qui pas el los las y del por con para es se al lo "
    "il di che e per non della sono gli o os do da em um uma com nao het een van dat op te zijn"
)
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())
_LETTERS = re.compile(r"[^\W\d_]+")
_ACCENTS = re.compile(r"[\u0300-\u036f]+")  # combining accents, after NFD: "é" is judged as "e"
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_CONSONANTS = re.compile(r"[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{5}")


def _odd(ch: str) -> bool:
    code = ord(ch)
    if 0xE000 <= code <= 0xF8FF or code >= 0xF0000 or ch == "\ufffd":
        return True
    return unicodedata.category(ch) in ("Cc", "Cs", "Cn") and ch not in "\t\n\r"


def _implausible(word: str) -> bool:
    """An ASCII word (accents already stripped) with no vowel, 5+ consonants in a row, or an inner capital."""
    return (
        not _VOWEL.search(word)
        or bool(_CONSONANTS.search(word))
        or (word[1:] != word[1:].lower() and not word.isupper())
    )


def unreadable_reason(text: str) -> str | None:
    """Why a page's text layer looks unreadable (the two tests above), or None when it looks like text. Only the
    first UNREADABLE_SAMPLE_CHARS characters are judged, so a page of millions of characters costs no more."""
    text = text[:UNREADABLE_SAMPLE_CHARS]
    chars = [ch for ch in text if not ch.isspace()]
    odd = sum(map(_odd, chars))
    if len(chars) >= 20 and odd >= UNREADABLE_ODD_SHARE * len(chars):
        return f"{odd / len(chars):.0%} of its characters are private-use, U+FFFD or control codes"
    words = _LETTERS.findall(_ACCENTS.sub("", unicodedata.normalize("NFD", text)))
    judged = [w for w in words if len(w) >= 3 and w.isascii() and not (w.isupper() and len(w) <= 5)]
    if len(judged) < UNREADABLE_MIN_WORDS:
        return None
    share = sum(map(_implausible, judged)) / len(judged)
    quiet = sum(w.lower() in _FUNCTION_WORDS for w in words) < _FUNCTION_WORD_SHARE * len(words)
    if share >= UNREADABLE_WORD_SHARE or (quiet and share >= UNREADABLE_WORD_SHARE_QUIET):
        return f"{share:.0%} of its words are implausible letter sequences"
    return None
