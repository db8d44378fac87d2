"""PDF -> Document. The only module in docanalyst that imports PyMuPDF.

MuPDF repairs a lot silently; what it cannot repair surfaces as exceptions at open time or, for broken
page trees, only when a page is loaded. Both become one ``PdfError`` subclass with a plain message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pymupdf

from docanalyst.document import Document, PageContent, build_document, safe_text
from docanalyst.errors import (
    DamagedPdfError,
    EmptyDocumentError,
    EncryptedPdfError,
    NotAPdfError,
)

# MuPDF prints repair chatter on stderr by default; we collect it as document warnings instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

_MIN_TABLE_CELLS = 4
# find_tables costs ~0.1 s a page; a ruled table needs several vector strokes, so pages with fewer
# drawing items than this are not searched (measured: 5x faster on a 467-page book, same tables found).
_MIN_DRAWING_ITEMS = 4


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_pdf(path: Path, password: str | None = None) -> pymupdf.Document:
    """Open and unlock; raise a PdfError with a plain reason otherwise."""
    if not path.exists():
        raise NotAPdfError("no such file", path=path)
    if path.is_dir():
        raise NotAPdfError("is a folder, not a PDF", path=path)
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # MuPDF raises FileDataError / RuntimeError subclasses
        raise NotAPdfError("cannot open: not a PDF, or damaged beyond repair", path=path) from exc
    if doc.needs_pass:
        if password is None:
            if doc.authenticate(""):
                return doc
            doc.close()
            raise EncryptedPdfError("encrypted: a password is needed (use --password)", path=path)
        if not doc.authenticate(password):
            doc.close()
            raise EncryptedPdfError("encrypted: the password is wrong", path=path)
    return doc


def _markdown(table: pymupdf.table.Table) -> str:
    """Markdown of a table. When PyMuPDF takes an 'external' header (text above the table, which is
    already in the page text), drop it and use the table's own first row as the header."""
    lines = [line for line in table.to_markdown(clean=False).splitlines() if line.strip()]
    if getattr(table.header, "external", False) and len(lines) > 3:
        lines = [lines[2], lines[1], *lines[3:]]
    return "\n".join(lines)


def _page_text(page: pymupdf.Page, tables: bool) -> tuple[str, int]:
    """Plain text in reading order, with detected tables replaced by Markdown tables."""
    if not tables or sum(len(d["items"]) for d in page.get_cdrawings()) < _MIN_DRAWING_ITEMS:
        return page.get_text("text"), 0
    try:
        found = [t for t in page.find_tables().tables if t.row_count * t.col_count >= _MIN_TABLE_CELLS]
    except Exception:  # table detection is best effort; the plain text is still right
        found = []
    if not found:
        return page.get_text("text"), 0
    rects = [pymupdf.Rect(t.bbox) for t in found]
    pieces: list[str] = []
    placed: set[int] = set()
    for block in page.get_text("blocks"):
        x0, y0, x1, y1, text = block[:5]
        inside = next((i for i, r in enumerate(rects) if r.intersects(pymupdf.Rect(x0, y0, x1, y1))), None)
        if inside is None:
            pieces.append(text)
        elif inside not in placed:
            placed.add(inside)
            pieces.append("\n" + _markdown(found[inside]) + "\n")
    for i, table in enumerate(found):
        if i not in placed:
            pieces.append("\n" + _markdown(table) + "\n")
    return "\n".join(pieces), len(found)


def load_pdf(path: str | Path, password: str | None = None, *, tables: bool = True) -> Document:
    """Read every page of a PDF into a Document (text per page, tables as Markdown, metadata, sha256)."""
    path = Path(path)
    pymupdf.TOOLS.reset_mupdf_warnings()
    doc = open_pdf(path, password)
    try:
        if doc.page_count == 0:
            raise EmptyDocumentError("no pages (empty or damaged beyond repair)", path=path)
        contents: list[PageContent] = []
        for index in range(doc.page_count):
            try:
                page = doc.load_page(index)
                text, n_tables = _page_text(page, tables)
                has_images = bool(page.get_images(full=False))
            except Exception as exc:
                raise DamagedPdfError(f"cannot open: {exc}", path=path, page=index + 1) from exc
            has_text = bool(text.strip())
            contents.append(PageContent(text=text, has_text_layer=has_text or not has_images, tables=n_tables))
        # A page with neither text nor images is blank, not scanned; but a document with no text at all
        # cannot be analysed either way, so mark every page as lacking text then.
        if not any(c.text.strip() for c in contents):
            contents = [PageContent(text=c.text, has_text_layer=False, tables=c.tables) for c in contents]
        meta = doc.metadata or {}
        warnings = [w for w in pymupdf.TOOLS.mupdf_warnings().splitlines() if w.strip()][:5]
        return build_document(
            contents,
            path=str(path),
            sha256=_sha256(path),
            title=(meta.get("title") or "").strip() or None,
            author=(meta.get("author") or "").strip() or None,
            encrypted=bool(doc.is_encrypted or meta.get("encryption")),
            warnings=[safe_text(f"MuPDF: {w}") for w in warnings],
        )
    finally:
        doc.close()
