"""The web app reads uploaded PDFs through the isolated reader process, never in its own process.

Why: a hostile or broken upload (a text bomb, a crashing parser) must be bounded in time and memory exactly as
on the command line; a read in the Streamlit process would take the whole server down with it.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT, SAMPLE_CONTRACT

pytest.importorskip("streamlit")


def _app_module() -> ModuleType:
    sys.path.insert(0, str(ROOT / "ui"))
    return importlib.import_module("app")  # import-safe: it draws nothing unless run as __main__


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_app_imports_neither_the_pdf_reader_nor_pymupdf() -> None:
    imported = _imported(ROOT / "ui" / "app.py")
    assert not imported & {"docanalyst.pdf", "pymupdf", "fitz"}, imported


def test_document_info_reads_in_the_reader_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_pdf broken in this process: the page still reads, because the read happens in the child."""
    import docanalyst.pdf

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the web app parsed a PDF in its own process")

    monkeypatch.setattr(docanalyst.pdf, "load_pdf", refuse)
    app = _app_module()
    info = app.document_info.__wrapped__(str(SAMPLE_CONTRACT), None)
    assert info is not None and info["pages"] >= 1 and info["text"]


def test_a_file_the_reader_refuses_gives_no_document(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"this is not a pdf at all")
    assert _app_module().document_info.__wrapped__(str(bad), None) is None
