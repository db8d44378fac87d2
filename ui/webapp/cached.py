"""What the page keeps between reruns: the server's engine and store, and per-file results that cost a child
process (budget, document text, page images).

Every read of an uploaded PDF here goes through a bounded child process: ``Analyzer.budget`` and
``Analyzer.load`` use isolation.py's reader, ``page_images.render_page`` its own drawing process. Nothing in
the server process opens a PDF.
"""

from __future__ import annotations

import atexit
from typing import Any

import streamlit as st

from docanalyst.config import Settings
from docanalyst.errors import DocanalystError, EncryptedPdfError
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.store import Store
from webapp.engine_holder import EngineHolder
from webapp.page_images import render_page


@st.cache_resource(show_spinner=False)
def get_holder() -> EngineHolder:
    holder = EngineHolder(Settings.from_env())
    atexit.register(holder.close)
    return holder


@st.cache_resource(show_spinner=False)
def get_store(db_url: str) -> Store:
    return Store(db_url)


@st.cache_data(show_spinner=False, max_entries=128)
def budget_for(path: str, template: str, profile: str, password: str | None) -> dict[str, Any]:
    """Budget of one file for a template and profile (no engine). Errors come back as a plain message."""
    analyzer = Analyzer(Settings.from_env())
    try:
        document, report, verdict = analyzer.budget(
            path, ExtractOptions(template=template, profile=profile, password=password)
        )
    except EncryptedPdfError as exc:
        return {"error": str(exc), "encrypted": True}
    except DocanalystError as exc:
        return {"error": str(exc), "encrypted": False}
    return {
        "error": None,
        "pages": document.page_count,
        "pages_without_text": document.pages_without_text,
        "warnings": list(document.warnings),
        "tokens": report.document_tokens,
        "exact": report.exact,
        "needed": report.needed,
        "window": report.window,
        "fits": report.fits,
        "verdict": str(verdict),
    }


@st.cache_data(show_spinner=False, max_entries=256)
def page_image(
    path: str, page: int, quote: str | None, password: str | None, occurrence: int | None = None, zoom: float = 1.0
) -> tuple[bytes, int]:
    return render_page(path, page, quote, password, occurrence=occurrence, zoom=zoom)


@st.cache_data(show_spinner=False, max_entries=64)
def document_info(path: str, password: str | None) -> dict[str, Any] | None:
    """The document's text and warnings, read by the same time/memory-bounded reader process as the CLI
    (Analyzer.load -> isolation.load_pdf_isolated): an uploaded file is never parsed in the web app's process.
    Cached, so the reader process is paid once per file, not per rerun."""
    try:
        doc = Analyzer(Settings.from_env()).load(path, ExtractOptions(password=password))
    except DocanalystError:
        return None
    return {
        "warnings": list(doc.warnings),
        "pages_without_text": doc.pages_without_text,
        "pages": doc.page_count,
        "text": doc.text,
        "page_starts": [page.start for page in doc.pages],
    }
