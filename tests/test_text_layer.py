"""Text layers that cannot be read (private-use code points, U+FFFD, wrong letter maps), Hebrew/Arabic
presentation forms, and the time budget of table detection. The PDFs are generated here with PyMuPDF: a font
whose ToUnicode map is replaced renders exactly as before but reads as something else, as broken PDFs do."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pymupdf
import pytest

from docanalyst import pdf
from docanalyst.document import PageContent, build_document, unreadable_reason
from docanalyst.grounding import DocumentIndex
from docanalyst.pdf import load_pdf, ocr_unavailable_reason

from conftest import CORPUS

LINES = [
    "This Agreement is made between Acme Corp and Beta LLC on the first day of March.",
    "The Supplier shall deliver the goods to the Buyer within thirty days of an order.",
    "Payment is due within sixty days of the invoice, and late payment bears interest.",
    "Either party may end this agreement with ninety days of written notice to the other.",
    "This agreement is governed by the laws of the State of New York and its courts.",
]
CMAP = """/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def /CMapType 2 def
1 begincodespacerange <00> <FF> endcodespacerange
{count} beginbfrange
{ranges}
endbfrange
endcmap CMapName currentdict /CIDInit /ProcSet findresource pop end end"""
PRIVATE_USE = ["<20> <7E> <E020>"]  # every character maps to U+E020.. (as Type3 and symbol fonts often do)
SHIFTED = ["<41> <59> <0042>", "<61> <79> <0062>"]  # A->B, b->c: a ToUnicode map off by one


def write_pdf(path: Path, pages: list[list[str]], to_unicode: list[str] | None = None) -> Path:
    """Helvetica text; with ``to_unicode``, the font's ToUnicode map is replaced by these bfranges."""
    doc = pymupdf.open()
    for lines in pages:
        page = doc.new_page()
        for i, line in enumerate(lines):
            page.insert_text((40, 60 + 20 * i), line, fontname="helv", fontsize=10)
    if to_unicode is not None:
        cmap = doc.get_new_xref()
        doc.update_object(cmap, "<<>>")
        doc.update_stream(cmap, CMAP.format(count=len(to_unicode), ranges="\n".join(to_unicode)).encode())
        for xref in {font[0] for number in range(doc.page_count) for font in doc[number].get_fonts()}:
            doc.xref_set_key(xref, "ToUnicode", f"{cmap} 0 R")
    doc.save(path)
    doc.close()
    return path


def shuffled(lines: list[str], seed: int = 0) -> list[str]:
    """The same lines with all their letters shuffled across the page (spaces and punctuation kept)."""
    letters = [ch for ch in "".join(lines) if ch.isalpha()]
    random.Random(seed).shuffle(letters)
    it = iter(letters)
    return ["".join(next(it) if ch.isalpha() else ch for ch in line) for line in lines]


def test_the_detector_on_text() -> None:
    prose = " ".join(LINES * 2)
    assert unreadable_reason(prose) is None
    assert (
        unreadable_reason("\ufffd" * 30 + " Total 4,250 EUR")
        == "70% of its characters are private-use, U+FFFD or control codes"
    )
    assert unreadable_reason("".join(chr(0xE000 + ord(c)) for c in prose)) is not None
    assert unreadable_reason(" ".join(shuffled(LINES * 2))) == "27% of its words are implausible letter sequences"
    # Short pages, formulas and acronyms are not judged as words.
    assert unreadable_reason("TsS DpF bzgl dsn HTML PDF LLC xyz") is None


def test_unreadable_pages_are_named_when_ocr_cannot_run(tmp_path: Path) -> None:
    doc = load_pdf(write_pdf(tmp_path / "pua.pdf", [LINES * 2, LINES * 2], PRIVATE_USE), ocr=False)
    assert doc.warnings == (
        "page 1: the text layer looks unreadable (100% of its characters are private-use, U+FFFD or control codes); "
        "OCR not run: OCR is turned off",
        "page 2: the text layer looks unreadable (100% of its characters are private-use, U+FFFD or control codes); "
        "OCR not run: OCR is turned off",
    )
    shifted = load_pdf(write_pdf(tmp_path / "shifted.pdf", [LINES * 2], SHIFTED), ocr=False)
    assert shifted.pages[0].text.startswith("Uijt Bhsffnfou jt nbef cfuxffo Bdnf Dpsq")
    assert shifted.warnings == (
        "page 1: the text layer looks unreadable (26% of its words are implausible letter sequences); "
        "OCR not run: OCR is turned off",
    )
    mixed = load_pdf(write_pdf(tmp_path / "shuffled.pdf", [LINES * 2, shuffled(LINES * 2)]), ocr=False)
    assert [w.split(":")[0] for w in mixed.warnings] == ["page 2"]
    assert load_pdf(write_pdf(tmp_path / "fine.pdf", [LINES * 2]), ocr=False).warnings == ()


def test_many_unreadable_pages_share_one_warning(tmp_path: Path) -> None:
    doc = load_pdf(write_pdf(tmp_path / "pua.pdf", [LINES] * 7, PRIVATE_USE), ocr=False)
    assert doc.warnings == (
        "pages 1, 2, 3, 4, 5, 6, 7: the text layer looks unreadable (odd characters or implausible words); "
        "OCR not run: OCR is turned off",
    )


def test_an_unreadable_page_is_read_by_ocr(tmp_path: Path) -> None:
    reason = ocr_unavailable_reason("eng")
    if reason is not None:  # a skipped OCR test proves nothing (see test_ocr.py)
        pytest.fail(f"OCR cannot run here: {reason}; run `bash scripts/setup.sh` first")
    doc = load_pdf(write_pdf(tmp_path / "pua.pdf", [LINES], PRIVATE_USE))
    page = doc.pages[0]
    assert page.ocr and "Supplier shall deliver the goods" in page.text
    assert doc.warnings == (
        "page 1: the text layer looks unreadable (100% of its characters are private-use, U+FFFD or control "
        "codes); read by OCR instead",
    )


def test_presentation_forms_become_letters_and_offsets_hold() -> None:
    forms = "ﺍﻟﺴﻼﻡ ﻋﻠﻴﻜﻢ and שָׁלוֹם"  # Arabic presentation forms B, a lam-alef ligature, Hebrew forms
    doc = build_document([PageContent("Intro"), PageContent(f"Greeting: {forms}.")], path="a.pdf", sha256="3" * 64)
    letters = unicodedata.normalize("NFKC", forms)
    assert doc.pages[1].text == f"Greeting: {letters}."
    assert doc.text[doc.pages[1].start : doc.pages[1].end] == doc.pages[1].text
    assert not any("\ufb1d" <= ch <= "\ufdff" or "\ufe70" <= ch <= "\ufefe" for ch in doc.text)
    found = DocumentIndex(doc).locate("السلام عليكم", 2)
    assert (found.status, found.page) == ("exact", 2)


def test_arabic_presentation_forms_in_a_pdf(tmp_path: Path) -> None:
    source = pymupdf.open()
    page = source.new_page()
    page.insert_font(fontname="naskh", fontbuffer=pymupdf.Font(script=6).buffer)  # MuPDF's Noto Naskh Arabic
    page.insert_text((72, 100), "ﻢﻜﻴﻠﻋ ﻡﻼﺴﻟﺍ", fontname="naskh", fontsize=14)  # visual order, as PDFs draw it
    source.save(tmp_path / "ar.pdf")
    doc = load_pdf(tmp_path / "ar.pdf", ocr=False)
    assert doc.pages[0].text == "السلام\xa0عليكم" and doc.warnings == ()


def ruled_table_pdf(path: Path, pages: int) -> Path:
    doc = pymupdf.open()
    for number in range(1, pages + 1):
        page = doc.new_page()
        page.insert_text((50, 60), f"Schedule {number}", fontname="helv", fontsize=12)
        for row in range(4):
            for col in range(3):
                cell = pymupdf.Rect(50 + 150 * col, 80 + 25 * row, 200 + 150 * col, 105 + 25 * row)
                page.draw_rect(cell, color=(0, 0, 0), width=0.8)
                page.insert_text((cell.x0 + 5, cell.y1 - 8), f"r{row}c{col} p{number}", fontname="helv", fontsize=9)
    doc.save(path)
    return path


class SteppingClock:
    """time.monotonic for pdf.py that advances one second per call: a deterministic stand-in for slow pages."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


def test_table_detection_stops_at_its_budget_and_the_text_stays(tmp_path: Path, monkeypatch) -> None:
    """A long document of ruled tables (find_tables costs 0.1-0.6 s a page) is read as text past the budget."""
    path = ruled_table_pdf(tmp_path / "schedules.pdf", 5)
    monkeypatch.setattr(pdf, "time", SteppingClock())  # one call at the start, one per page while detecting
    doc = load_pdf(path, ocr=False, table_budget_s=2.5)
    assert [p.tables for p in doc.pages] == [1, 1, 0, 0, 0]
    assert doc.warnings == (
        "tables not detected on pages 3-5 (read as plain text): table detection stops after 2.5 s so that "
        "reading ends within its time limit",
    )
    for page in doc.pages:
        cells = [f"r{row}c{col} p{page.number}" for row in range(4) for col in range(3)]
        assert all(cell in page.text for cell in cells) and page.text.startswith(f"Schedule {page.number}")
        assert ("| r0c0 p" in page.text or "|r0c0 p" in page.text) == (page.number <= 2)  # Markdown table


def test_the_isolated_reader_gives_table_detection_a_share_of_its_time_limit(tmp_path: Path) -> None:
    from docanalyst.config import Settings
    from docanalyst.isolation import TABLE_BUDGET_SHARE, load_pdf_isolated, prepare_request
    from docanalyst.pipeline import ExtractOptions

    request = prepare_request(Settings.from_env(), tmp_path / "x.pdf", ExtractOptions(read_timeout_s=300))
    assert request["options"]["table_budget_s"] == 300 * TABLE_BUDGET_SHARE == 150
    doc = load_pdf_isolated(ruled_table_pdf(tmp_path / "s.pdf", 3), timeout_s=120, ocr=False, table_budget_s=0)
    assert [p.tables for p in doc.pages] == [0, 0, 0] and all("r3c2 p" in p.text for p in doc.pages)
    assert doc.warnings[-1].startswith("tables not detected on pages 1-3 (read as plain text)")


def test_a_real_arabic_pdf_reads_as_letters() -> None:
    doc = load_pdf(CORPUS / "robustness/pdfjs/ArabicCIDTrueType.pdf", ocr=False)
    assert doc.pages[0].text.splitlines() == ["انواع الخطوط العربية"] * 4
    assert DocumentIndex(doc).locate("الخطوط العربية", 1).status == "exact"
