import hashlib

import pytest

from docanalyst.errors import EmptyDocumentError, EncryptedPdfError, NotAPdfError
from docanalyst.pdf import load_pdf

from conftest import CORPUS, SAMPLE_CONTRACT


def test_sample_contract_pages_tables_metadata() -> None:
    doc = load_pdf(SAMPLE_CONTRACT)
    assert doc.page_count == 2
    assert doc.title == "Master Services Agreement"
    assert doc.sha256 == hashlib.sha256(SAMPLE_CONTRACT.read_bytes()).hexdigest()
    assert "Northwind Analytics Ltd." in doc.pages[0].text
    assert "governed by the laws of the State of New York" in " ".join(doc.pages[1].text.split())
    # The fee schedule is a ruled table: it comes out as Markdown, header first.
    assert doc.pages[1].tables == 1
    assert "|**Service**|**Monthly fee (USD)**|**Billing**|\n|---|---|---|" in doc.pages[1].text
    assert "|Analytics reporting|4,500|monthly in arrears|" in doc.pages[1].text
    assert doc.pages[0].tables == 0


def test_known_text_page_matches_reference() -> None:
    doc = load_pdf(CORPUS / "robustness/pypdf/crazyones.pdf")
    expected = (CORPUS / "robustness/pypdf/crazyones.txt").read_text(encoding="utf-8")
    assert " ".join(doc.pages[0].text.split()) == " ".join(expected.split())


def test_errors_are_specific(tmp_path) -> None:
    bogus = tmp_path / "notes.pdf"
    bogus.write_text("just text")
    with pytest.raises(NotAPdfError, match="cannot open: not a PDF, or damaged beyond repair"):
        load_pdf(bogus)
    with pytest.raises(NotAPdfError, match="no such file"):
        load_pdf(tmp_path / "missing.pdf")
    with pytest.raises(EncryptedPdfError, match="encrypted: a password is needed"):
        load_pdf(CORPUS / "robustness/pdfjs/issue6010_1.pdf")
    with pytest.raises(EncryptedPdfError, match="encrypted: the password is wrong"):
        load_pdf(CORPUS / "robustness/pdfjs/issue6010_1.pdf", password="nope")
    with pytest.raises(EmptyDocumentError, match="no pages"):
        load_pdf(CORPUS / "robustness/qpdf/issue-141a.pdf")


def test_non_ascii_password() -> None:
    doc = load_pdf(CORPUS / "robustness/pdfjs/issue21579.pdf", password="pässwört")
    assert doc.page_count == 1 and doc.encrypted
