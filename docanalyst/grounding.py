"""Check every quote against the document: is it really on the page the model cited?

Matching is exact after whitespace normalisation (PDF text breaks lines where the model does not) and
Unicode NFKC (ligatures, full-width forms). Deeper, fuzzy grounding is a separate concern.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Literal

from docanalyst.document import Document
from docanalyst.schemas import iter_cited

Status = Literal["found", "other_page", "not_found", "no_quote"]
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass(frozen=True)
class GroundedField:
    path: str
    value: str | None
    quote: str | None
    page: int | None
    status: Status
    found_page: int | None  # where the quote really is (None when not found)

    @property
    def quote_found(self) -> bool:
        return self.status in ("found", "other_page")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "quote_found": self.quote_found}


class PageIndex:
    """Normalised page texts, built once per document."""

    def __init__(self, document: Document) -> None:
        self.pages = [normalize(p.text) for p in document.pages]

    def locate(self, quote: str, page: int | None) -> tuple[Status, int | None]:
        needle = normalize(quote)
        if not needle:
            return "no_quote", None
        if page is not None and 1 <= page <= len(self.pages) and needle in self.pages[page - 1]:
            return "found", page
        for number, text in enumerate(self.pages, start=1):
            if needle in text:
                return "other_page", number
        return "not_found", None


def ground(document: Document, result: dict[str, Any]) -> list[GroundedField]:
    """Ground every cited value of a validated result (a ``model_dump()``), in field order."""
    index = PageIndex(document)
    out: list[GroundedField] = []
    for path, cited in iter_cited(result):
        quote, page = cited.get("quote"), cited.get("page")
        status, found = index.locate(quote, page) if quote else ("no_quote", None)
        out.append(GroundedField(path, cited.get("value"), quote, page, status, found))
    return out


def annotate(result: dict[str, Any], fields: list[GroundedField]) -> dict[str, Any]:
    """Copy of the result with ``quote_status`` and ``quote_found`` beside every quote."""
    import copy

    annotated = copy.deepcopy(result)
    by_path = {f.path: f for f in fields}
    for path, cited in iter_cited(annotated):
        field = by_path.get(path)
        if field is not None:
            cited["quote_status"] = field.status
            cited["quote_found"] = field.quote_found
            if field.status == "other_page":
                cited["found_page"] = field.found_page
    return annotated
