"""The document model: pages, the one canonical text, and character offsets into it.

Why a canonical text: the model sees exactly ``Document.text``; every page's ``start``/``end`` point into
it, so a quote found in the text maps back to a page without guessing. No PDF library is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

PAGE_HEADER = "[Page {number}]\n"
PAGE_SEPARATOR = "\n\n"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def safe_text(text: str) -> str:
    """Valid Unicode only: broken fonts can yield lone surrogates, which no UTF-8 output can carry."""
    return text.encode("utf-8", "replace").decode("utf-8")


def clean_page_text(text: str) -> str:
    """Light normalisation that keeps words, spacing and line structure: no control bytes, no runs of blank
    lines. (Grounding normalises whitespace itself, so nothing here needs to.)"""
    text = safe_text(text)
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
