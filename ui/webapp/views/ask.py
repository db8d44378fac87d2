"""The question box under a run: a question about the whole document, answered with quotes (``Analyzer.ask``);
the questions asked about the document are a stored thread, the newest answer shown like any run (``show_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from docanalyst.pipeline import ExtractOptions
from docanalyst.profiles import get_profile
from webapp.jobs import start_ask
from webapp.runs import RunView, load_run, question_runs
from webapp.views.context import Page, follow
from webapp.views.show_run import show_run


def ask(page: Page, view: RunView, question: str) -> dict[str, list[Any]]:
    """Ask on the run's own profile; the stored answer runs and the errors."""
    model_ref = page.model_ref_for(view.run.profile)
    if model_ref is None:
        return {"run_ids": [], "errors": []}
    page.holder.ensure(get_profile(view.run.profile), model_ref)
    options = ExtractOptions(profile=view.run.profile, password=page.password(view.document.sha256), force=page.force)
    job = start_ask(page.holder, page.analyzer(), options, view.document.path, question)
    outcomes, errors = follow(page, job, st.progress(0.0, text="asking…"))
    return {
        "run_ids": [o.run_id for o in outcomes if o.run_id is not None],
        "errors": errors + [str(o.error) for o in outcomes if o.error],
    }


def ask_box(page: Page, view: RunView, key: str) -> None:
    """The question box and the thread of every question asked about this document (stored, so it survives a
    reload); the newest answer opens in the workspace, with its citations on the page."""
    if not Path(view.document.path).exists():
        return
    asked_key = f"{key}_asked"
    with st.container(border=True):
        with st.form(key=f"{key}_ask_form", border=False):
            question = st.text_input(
                "Ask a question about this document",
                key=f"{key}_question",
                placeholder="e.g. Who may terminate the agreement, and how?",
            )
            submitted = st.form_submit_button("Ask", key=f"{key}_ask")
        if submitted and question and question.strip():
            page.state[asked_key] = ask(page, view, question.strip())
        for message in (page.state.get(asked_key) or {}).get("errors", []):
            st.error(message)
        thread = question_runs(page.store, view.document.sha256)
        for number, run in enumerate(thread, start=1):
            st.markdown(f"**Q{number}:** {run.question}")
            answer = (run.result or {}).get("answer")
            st.markdown(f"**A{number}:** {answer or '_(no answer: ' + str(run.status) + ')_'}")
        if thread and thread[-1].id is not None:
            latest = load_run(page.store, thread[-1].id)
            if latest is not None:
                with st.expander(f"Evidence for the answer to Q{len(thread)}", expanded=True):
                    show_run(page, latest, key=f"{key}_answer{latest.run.id}", remember=False)
