"""The web app reads uploaded PDFs only in bounded child processes, never in its own process.

Why: a hostile or broken upload (a text bomb, a crashing parser) must be bounded in time and memory exactly as
on the command line; a read in the Streamlit process would take the whole server down with it. The text and the
budget come from isolation.py's reader; page images from ``webapp/render_child.py``, its own child process.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from docanalyst.errors import DocanalystError

from conftest import ROOT, SAMPLE_CONTRACT

pytest.importorskip("streamlit")
sys.path.insert(0, str(ROOT / "ui"))
from webapp import cached, page_images

UI = ROOT / "ui"
CHILD = UI / "webapp" / "render_child.py"
GOVERNING = "This Agreement is governed by the laws of the State of New York."


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


SERVER_MODULES = {p.relative_to(UI).as_posix(): _imported(p) for p in UI.rglob("*.py") if p != CHILD}


def test_the_server_imports_no_pdf_reader_no_pymupdf_and_no_engine_backend() -> None:
    """Only the drawing child touches PyMuPDF; engines come through the pool (docanalyst.engines), never a
    backend module directly."""
    assert "app.py" in SERVER_MODULES and "webapp/views/show_run.py" in SERVER_MODULES
    forbidden = {"docanalyst.pdf", "pymupdf", "fitz", "vllm", "docanalyst.engines.vllm", "webapp.render_child"}
    assert {m: names & forbidden for m, names in SERVER_MODULES.items() if names & forbidden} == {}
    assert "pymupdf" in _imported(CHILD)


def test_document_info_reads_in_the_reader_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_pdf broken in this process: the page still reads, because the read happens in the child."""
    import docanalyst.pdf

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the web app parsed a PDF in its own process")

    monkeypatch.setattr(docanalyst.pdf, "load_pdf", refuse)
    info = cached.document_info.__wrapped__(str(SAMPLE_CONTRACT), None)  # type: ignore[attr-defined]
    assert info is not None and info["pages"] == 2 and "governed by the laws" in info["text"]


def test_a_file_the_reader_refuses_gives_no_document(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"this is not a pdf at all")
    assert cached.document_info.__wrapped__(str(bad), None) is None  # type: ignore[attr-defined]


def test_page_images_are_drawn_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyMuPDF made unusable in this process: the page is still drawn, with the quote highlighted."""
    monkeypatch.setitem(sys.modules, "pymupdf", None)  # any import of it here now fails
    png, hits = page_images.render_page(SAMPLE_CONTRACT, 2, GOVERNING)
    assert png.startswith(page_images.PNG_SIGNATURE) and hits == 1


def test_a_broken_file_or_a_slow_drawing_is_one_plain_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"this is not a pdf at all")
    with pytest.raises(DocanalystError, match="cannot open the PDF to show the page"):
        page_images.render_page(bad, 1)
    with pytest.raises(DocanalystError, match=r"page 3 is outside 1\.\.2"):
        page_images.render_page(SAMPLE_CONTRACT, 3)
    with pytest.raises(DocanalystError, match="drawing the page took longer than 0 s"):
        page_images.render_page(SAMPLE_CONTRACT, 1, timeout_s=0.01)
