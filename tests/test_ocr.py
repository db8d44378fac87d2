"""OCR of pages without a text layer: a page this test renders to an image with known words, and a real scan.

Tesseract is installed by scripts/setup.sh (Debian: tesseract-ocr, tesseract-ocr-eng); without it these tests
fail loudly instead of skipping, because a skipped OCR test proves nothing.
"""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from docanalyst import pdf
from docanalyst.errors import ConfigError
from docanalyst.pdf import load_pdf, ocr_unavailable_reason

from conftest import CORPUS

WORDS = ["Harbour", "invoice", "seventeen", "granite", "Wednesday", "lantern", "orchard", "meridian"]
LINES = [" ".join(WORDS[:4]), " ".join(WORDS[4:]), "Total due: 4,250 EUR by 12 March 2027"]


@pytest.fixture(scope="module", autouse=True)
def tesseract() -> None:
    reason = ocr_unavailable_reason("eng")
    if reason is not None:
        pytest.fail(f"OCR cannot run here: {reason}; run `bash scripts/setup.sh` first")


def image_only_pdf(folder: Path, pages: int = 1) -> Path:
    """Known words drawn as text, rasterised, and placed as the only content of a new PDF's pages."""
    source = pymupdf.open()
    page = source.new_page(width=595, height=842)
    for i, line in enumerate(LINES):
        page.insert_text((72, 120 + 40 * i), line, fontsize=20, fontname="helv")
    png = page.get_pixmap(dpi=150).tobytes("png")
    source.close()
    scan = pymupdf.open()
    for _ in range(pages):
        out = scan.new_page(width=595, height=842)
        out.insert_image(out.rect, stream=png)
    path = folder / "scan.pdf"
    scan.save(path)
    scan.close()
    return path


def test_rendered_scan_has_no_text_layer_until_ocr(tmp_path) -> None:
    path = image_only_pdf(tmp_path)
    plain = load_pdf(path, ocr=False)
    assert plain.pages[0].text == "" and plain.pages_without_text == [1] and not plain.pages[0].ocr
    assert "OCR not run on page 1: OCR is turned off" in plain.warnings

    doc = load_pdf(path)  # OCR is on by default
    page = doc.pages[0]
    assert page.ocr and page.has_text_layer and doc.pages_without_text == []
    assert set(WORDS) <= set(page.text.split()), page.text
    assert "Total due: 4,250 EUR by 12 March 2027" in page.text, page.text
    assert doc.warnings == ("text on page 1 recovered by OCR (Tesseract, eng)",)
    assert page.text in doc.text  # the OCR text is part of the canonical text the model reads


def test_every_scanned_page_is_read_and_named(tmp_path) -> None:
    doc = load_pdf(image_only_pdf(tmp_path, pages=2))
    assert [p.ocr for p in doc.pages] == [True, True]
    assert "text on pages 1, 2 recovered by OCR (Tesseract, eng)" in doc.warnings
    assert all("meridian" in p.text for p in doc.pages)


def test_real_scan_issue7200_yields_text() -> None:
    doc = load_pdf(CORPUS / "robustness/pdfjs/issue7200.pdf")
    assert doc.pages[0].ocr and doc.pages_without_text == []
    assert doc.char_count > 2000
    assert "Lorem ipsum dolor sit amet" in doc.pages[0].text


def test_text_pages_are_not_ocrd() -> None:
    doc = load_pdf(CORPUS / "robustness/pypdf/crazyones.pdf")
    assert not any(p.ocr for p in doc.pages)
    assert not any("OCR" in w for w in doc.warnings)


def test_language_is_configurable_and_checked(tmp_path, monkeypatch) -> None:
    path = image_only_pdf(tmp_path)
    with pytest.raises(ConfigError, match="bad OCR language"):
        load_pdf(path, ocr_language="eng; rm -rf /")
    missing = load_pdf(path, ocr_language="zzz")  # a language whose data is not installed: plain warning
    assert missing.pages_without_text == [1]
    assert any(w.startswith("OCR not run on page 1: Tesseract has no language data for zzz") for w in missing.warnings)
    # Without Tesseract at all: the page keeps the clear no-text warning, and the reason is given.
    monkeypatch.setattr(pdf, "_tessdata_dir", lambda: None)
    bare = load_pdf(path)
    assert bare.pages_without_text == [1]
    assert any(w.startswith("OCR not run on page 1: Tesseract is not installed") for w in bare.warnings)
    assert any(w.startswith("no text layer on 1 of 1 page(s) (1)") for w in bare.warnings)
