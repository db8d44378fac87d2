"""PDF -> Document. The only module in docanalyst that imports PyMuPDF.

MuPDF repairs a lot silently; what it cannot repair surfaces as exceptions at open time or, for broken
page trees, only when a page is loaded. Both become one ``PdfError`` subclass with a plain message.

Pages without a text layer but with images (scans, faxes) are read by OCR: MuPDF renders the page and runs
Tesseract on it (``get_textpage_ocr``), when Tesseract's language data is installed (Debian: tesseract-ocr).
Such pages are marked ``ocr=True`` and named in the document's warnings; without Tesseract they keep the plain
no-text warning. Time and memory limits per file live in ``docanalyst.isolation`` (a subprocess).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import pymupdf

from docanalyst.document import Document, PageContent, build_document, safe_text, unreadable_reason
from docanalyst.errors import (
    ConfigError,
    DamagedPdfError,
    DocanalystError,
    EmptyDocumentError,
    EncryptedPdfError,
    NotAPdfError,
)
from docanalyst.page_workers import (
    ReadNotes,
    distinct_warnings,
    page_ranges,
    raise_failure,
    read_ranges,
    serve,
    worker_count,
)

# MuPDF prints repair chatter on stderr by default; we collect it as document warnings instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

_MIN_TABLE_CELLS = 4
# find_tables costs 0.1-1 s a page (PyMuPDF runs its layout model on the page first), so it only runs where
# vector rules could make a table: rules at three distinct heights (booktabs-style tables have no vertical
# ones), or at two heights and two distinct x positions. A rule drawn twice, or both edges of a thin filled
# rectangle, count once: counting them twice (as before issue 15) sent a page with a header and a footer rule
# (The Art of Public Speaking: 45 of its 85 candidate pages) to find_tables. Measured on ../shared/corpus
# (docs/BENCHMARKS.md, "Reading in parallel"): every table PyMuPDF finds is on such a page.
_MIN_ROWS = 3
# Seconds of reading after which table detection stops for the remaining pages: half of the default read
# timeout (300 s, pipeline.ExtractOptions.read_timeout_s), so that plain text and OCR keep the other half.
# The isolated reader passes isolation.TABLE_BUDGET_SHARE of its own time limit instead.
TABLE_BUDGET_S = 150.0


def _may_hold_table(page: pymupdf.Page) -> bool:
    """Whether the page's drawings alone could make a table (the distinct heights and x positions of its
    horizontal and vertical rules; a rectangle gives its four edges, a thin one a single rule)."""
    rows: set[int] = set()
    columns: set[int] = set()
    for drawing in page.get_cdrawings():
        for item in drawing["items"]:
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
                if abs(y0 - y1) < 1 and abs(x0 - x1) > 5:
                    rows.add(round(y0))
                if abs(x0 - x1) < 1 and abs(y0 - y1) > 5:
                    columns.add(round(x0))
            elif item[0] == "re":
                rect = pymupdf.Rect(item[1])
                if rect.width > 5 and rect.height > 5:
                    rows.update((round(rect.y0), round(rect.y1)))
                    columns.update((round(rect.x0), round(rect.x1)))
                elif rect.width > 5:
                    rows.add(round((rect.y0 + rect.y1) / 2))
                elif rect.height > 5:
                    columns.add(round((rect.x0 + rect.x1) / 2))
    return len(rows) >= _MIN_ROWS or (len(rows) >= 2 and len(columns) >= 2)


DEFAULT_OCR_LANGUAGE = "eng"
DEFAULT_OCR_DPI = 300
# A page rendered for OCR holds width x height x 3 bytes; huge pages (A0 drawings) get a lower resolution so
# one page never needs more than this many pixels (~75 MB of RGB).
_MAX_OCR_PIXELS = 25_000_000
# MuPDF reports a failed allocation as e.g. "code=2: realloc (209715264 bytes) failed".
_ALLOCATION_FAILED = re.compile(r"\b(?:m|re|c)?alloc(?:ate)? \(\d+ bytes\) failed|out of memory", re.IGNORECASE)
_LANGUAGE = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


@functools.lru_cache(maxsize=1)
def _tessdata_dir() -> str | None:
    """Tesseract's language folder (TESSDATA_PREFIX, else found by PyMuPDF), or None when Tesseract is absent."""
    try:
        found = pymupdf.get_tessdata()
    except Exception:  # RuntimeError: not installed
        return None
    return found if found and os.path.isdir(found) else None


def _check_language(language: str) -> None:
    if not _LANGUAGE.match(language):
        raise ConfigError(f"bad OCR language {language!r}: use Tesseract codes such as eng, deu or eng+fra")


def ocr_unavailable_reason(language: str = DEFAULT_OCR_LANGUAGE) -> str | None:
    """None when OCR in this language can run here; otherwise why not, in plain words."""
    _check_language(language)
    tessdata = _tessdata_dir()
    if tessdata is None:
        return "Tesseract is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
    missing = [
        lang for lang in language.split("+") if not os.path.isfile(os.path.join(tessdata, f"{lang}.traineddata"))
    ]
    if missing:
        return f"Tesseract has no language data for {'+'.join(missing)} in {tessdata}"
    return None


def ocr_available(language: str = DEFAULT_OCR_LANGUAGE) -> bool:
    return ocr_unavailable_reason(language) is None


def _ocr_page(page: pymupdf.Page, language: str, dpi: int) -> str:
    """Render the page and read it with Tesseract; at most _MAX_OCR_PIXELS pixels whatever the page size."""
    rect = page.rect
    area_in2 = max(rect.width, 1.0) * max(rect.height, 1.0) / (72.0 * 72.0)
    dpi = max(36, min(dpi, int(math.sqrt(_MAX_OCR_PIXELS / area_in2))))
    textpage = page.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=_tessdata_dir())
    return str(page.get_text("text", textpage=textpage))


def out_of_memory(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised from, is an allocation failure (MuPDF's or Python's)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, MemoryError) or _ALLOCATION_FAILED.search(str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(path: Path) -> pymupdf.Document:
    """MuPDF takes a UTF-8 file name, so a name that is not UTF-8 (surrogate-escaped in Python) would read as
    "no PDF here": such a file is opened from its bytes, read by Python through the original name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return pymupdf.open(stream=path.read_bytes(), filetype="pdf")
    return pymupdf.open(path, filetype="pdf")


def open_pdf(path: Path, password: str | None = None) -> pymupdf.Document:
    """Open and unlock; raise a PdfError with a plain reason otherwise."""
    if not path.exists():
        raise NotAPdfError("no such file", path=path)
    if path.is_dir():
        raise NotAPdfError("is a folder, not a PDF", path=path)
    try:
        doc = _open(path)
    except OSError as exc:
        raise NotAPdfError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
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
    if not tables or not _may_hold_table(page):
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


def load_pdf(
    path: str | Path,
    password: str | None = None,
    *,
    tables: bool = True,
    ocr: bool = True,
    ocr_language: str = DEFAULT_OCR_LANGUAGE,
    ocr_dpi: int = DEFAULT_OCR_DPI,
    table_budget_s: float | None = TABLE_BUDGET_S,
    workers: int | None = None,
) -> Document:
    """Read every page of a PDF into a Document (text per page, tables as Markdown, metadata, sha256).

    With ``ocr`` (the default), pages that have images but no text, and pages whose text layer looks unreadable
    (``document.unreadable_reason``), are read by Tesseract in ``ocr_language`` (Tesseract codes, e.g. ``eng``
    or ``eng+deu``) when it is installed; otherwise they carry a warning. Once reading has taken
    ``table_budget_s`` seconds (None: no limit), the remaining pages are read without table detection, with
    one warning, so that a long document full of ruled tables is read as text instead of not at all.
    A long document is read by several processes at once (``docanalyst.page_workers``; ``workers``: how many,
    this one included, instead of one per core and per ``MIN_PAGES_PER_WORKER`` pages); the Document is the same.
    """
    path = Path(path)
    _check_language(ocr_language)
    deadline = None if table_budget_s is None else time.monotonic() + table_budget_s
    options = {"tables": tables, "ocr": ocr, "language": ocr_language, "dpi": ocr_dpi, "deadline": deadline}
    try:
        return _load_pdf(path, password, options, table_budget_s, workers)
    except DocanalystError:
        raise
    except Exception as exc:  # MuPDF can fail anywhere on a damaged file (fuzzing found page_count raising)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DamagedPdfError(safe_text(f"cannot open: {first}"), path=path) from exc


class _PageReader:
    """Reads pages in order, carrying what spans pages: whether OCR can run (asked only when a page needs it:
    finding Tesseract runs a subprocess), the table-detection deadline, and the notes."""

    def __init__(self, tables: bool, ocr: bool, language: str, dpi: int, deadline: float | None) -> None:
        self.tables, self.language, self.dpi, self.deadline = tables, language, dpi, deadline
        self.found = ReadNotes(language, None if ocr else "OCR is turned off")
        self.ocr_checked = not ocr
        self.tables_stopped_at: int | None = None

    def read(self, page: pymupdf.Page, number: int) -> PageContent:
        if self.tables and self.deadline is not None and time.monotonic() > self.deadline:
            self.tables, self.tables_stopped_at = False, number
        text, n_tables = _page_text(page, self.tables)
        has_images = bool(page.get_images(full=False))
        has_text = bool(text.strip())
        garbled = unreadable_reason(text) if has_text else None
        if not (garbled or (has_images and not has_text)):
            return PageContent(text=text, has_text_layer=has_text or not has_images, tables=n_tables)
        recovered = self._ocr(page, number)
        if garbled is not None:
            done = "read by OCR instead" if recovered else self._why_no_ocr(recovered)
            self.found.unreadable.append((number, garbled, done))
        elif recovered:
            self.found.read_by_ocr.append(number)
        elif self.found.ocr_skipped is not None:
            self.found.not_read.append(number)
        if recovered:
            return PageContent(text=recovered, has_text_layer=True, tables=n_tables, ocr=True)
        return PageContent(text=text, has_text_layer=has_text, tables=n_tables)

    def _ocr(self, page: pymupdf.Page, number: int) -> str | None:
        """The page's text read by Tesseract; None when OCR cannot run, "" when it failed or found nothing."""
        if not self.ocr_checked:
            self.found.ocr_skipped, self.ocr_checked = ocr_unavailable_reason(self.language), True
        if self.found.ocr_skipped is not None:
            return None
        try:
            recovered = _ocr_page(page, self.language, self.dpi)
        except Exception as exc:  # OCR is best effort: the page keeps its warning
            if out_of_memory(exc):
                raise DamagedPdfError("OCR ran out of memory", page=number) from exc
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.found.notes.append(safe_text(f"OCR failed on page {number}: {reason}"))
            return ""
        return recovered if recovered.strip() else ""

    def _why_no_ocr(self, recovered: str | None) -> str:
        return f"OCR not run: {self.found.ocr_skipped}" if recovered is None else "OCR found no text in it either"


def _read_range(doc: pymupdf.Document, first: int, last: int, options: dict[str, Any]) -> dict[str, Any]:
    """Pages ``first``..``last`` (1-based) as JSON: their contents and notes (MuPDF's warnings included), or
    the error of the first page that failed, as a serial read would raise it."""
    reader = _PageReader(options["tables"], options["ocr"], options["language"], options["dpi"], options["deadline"])
    pymupdf.TOOLS.reset_mupdf_warnings()
    pages: list[list[Any]] = []
    for number in range(first, last + 1):
        try:
            content = reader.read(doc.load_page(number - 1), number)
        except Exception as exc:
            error = exc if isinstance(exc, DocanalystError) else DamagedPdfError(f"cannot open: {exc}")
            fault = {"class": type(error).__name__, "message": error.message, "memory": out_of_memory(exc)}
            return {"error": {**fault, "page": number}}
        pages.append([content.text, content.has_text_layer, content.tables, content.ocr])
    if reader.tables_stopped_at is not None:
        reader.found.tables_stopped.append([reader.tables_stopped_at, last])
    reader.found.mupdf = [w for w in pymupdf.TOOLS.mupdf_warnings().splitlines() if w.strip()]
    return {"pages": pages, "notes": reader.found.to_json()}


def _load_pdf(
    path: Path, password: str | None, options: dict[str, Any], table_budget_s: float | None, workers: int | None
) -> Document:
    pymupdf.TOOLS.reset_mupdf_warnings()
    doc = open_pdf(path, password)
    try:
        if doc.page_count == 0:
            raise EmptyDocumentError("no pages (empty or damaged beyond repair)", path=path)
        opened = [w for w in pymupdf.TOOLS.mupdf_warnings().splitlines() if w.strip()]
        processes = worker_count(doc.page_count, workers)
        requests = [
            {"path": str(path), "password": password, "first": first, "last": last, "options": options}
            for first, last in page_ranges(doc.page_count, processes)
        ]
        answers = read_ranges(requests, processes, lambda r: _read_range(doc, r["first"], r["last"], options))
        found, contents = ReadNotes(options["language"]), []
        for answer in answers:
            raise_failure(path, answer)
            found.merge(answer["notes"])
            contents += [PageContent(str(t), bool(layer), int(n), bool(o)) for t, layer, n, o in answer["pages"]]
        # A page with neither text nor images is blank, not scanned; but a document with no text at all
        # cannot be analysed either way, so mark every page as lacking text then.
        if not any(c.text.strip() for c in contents):
            contents = [PageContent(text=c.text, has_text_layer=False, tables=c.tables) for c in contents]
        meta = doc.metadata or {}
        return build_document(
            contents,
            path=str(path),
            sha256=_sha256(path),
            title=(meta.get("title") or "").strip() or None,
            author=(meta.get("author") or "").strip() or None,
            encrypted=bool(doc.is_encrypted or meta.get("encryption")),
            warnings=[safe_text(f"MuPDF: {w}") for w in distinct_warnings(opened + found.mupdf)[:5]]
            + found.warnings(doc.page_count, table_budget_s),
        )
    finally:
        doc.close()


def range_worker_main() -> None:
    """A page worker (``docanalyst.page_workers``): reads the page ranges it is sent, one document handle per file."""
    pymupdf.no_recommend_layout()  # find_tables would print a tip on stdout
    opened: dict[str, pymupdf.Document] = {}

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        first = int(request["first"])
        try:
            if request["path"] not in opened:
                opened[request["path"]] = open_pdf(Path(request["path"]), request["password"])
            doc = opened[request["path"]]
        except Exception as exc:  # the parent opened it a moment ago: this is a damaged or changed file
            message = exc.message if isinstance(exc, DocanalystError) else f"cannot open: {exc}"
            return {"error": {"class": "DamagedPdfError", "message": message, "page": first, "memory": False}}
        return _read_range(doc, first, int(request["last"]), request["options"])

    serve(handle)
