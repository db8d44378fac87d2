"""docanalyst in the browser: upload PDFs, pick or upload a template, check the token budget, extract, and see each
value's confidence and quote on its page.

Start it with ``docanalyst ui`` (Streamlit options pass through, e.g. ``--server.port 8502``) or
``streamlit run ui/app.py``. The engine is loaded once per server process, in the background, and runs are
serialised; the database is the same one the command line uses (``DOCANALYST_DB`` / ``DOCANALYST_HOME``).

This file is only the entry: the parts live in ``webapp/`` (plain helpers) and ``webapp/views/`` (one module per
tab, and the ``show_run`` component). Uploaded PDFs are read and drawn only in bounded child processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from webapp.cached import get_holder, get_store
from webapp.views.analyse import analyse_tab
from webapp.views.evaluations import evaluations_tab
from webapp.views.history import history_tab
from webapp.views.sidebar import sidebar

from docanalyst.config import Settings
from docanalyst.errors import DocanalystError


def main() -> None:
    st.set_page_config(page_title="docanalyst", page_icon="📄", layout="wide")
    settings = Settings.from_env()
    try:
        store = get_store(settings.db_url)
    except DocanalystError as exc:
        st.error(str(exc))
        st.stop()
    state = st.session_state
    state.setdefault("samples", [])  # sample files added with the button: (name, path, sha256)
    state.setdefault("passwords", {})  # sha256 -> password, this browser session only
    state.setdefault("results", None)  # {"run_ids": [...], "errors": [...], "notes": [...]}
    if state.results is None and st.query_params.get("run", "").isdigit():  # a reload, or a shared link
        state.results = {"run_ids": [int(st.query_params["run"])], "errors": [], "notes": []}
    page = sidebar(settings, get_holder(), store)

    st.title("docanalyst")
    st.caption(
        "Whole-document extraction with evidence: each value comes with a verbatim quote and its page, "
        "checked against the PDF, and a confidence."
    )
    analyse, history, evaluations = st.tabs(["Analyse", "History", "Evaluations"])
    with analyse:
        analyse_tab(page)
    with history:
        history_tab(page)
    with evaluations:
        evaluations_tab(store)


# Streamlit runs this file as __main__. vLLM's engine process (multiprocessing "spawn") re-imports it as
# __mp_main__: there it must only define things, never draw a page or load anything.
if __name__ == "__main__":
    main()
