"""``show_run``: one stored run, the same way wherever a run is shown (fresh results, History, an answer to a
question): its header, warnings, its evidence verdict, the review workspace (views/workspace.py), exports."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from webapp.cached import document_info
from webapp.runs import RunView, export_csv, export_json, run_warnings
from webapp.views.context import Page
from webapp.views.workspace import workspace


def header(view: RunView) -> None:
    run, doc = view.run, view.document
    st.markdown(
        f"**{Path(doc.path).name}** · {doc.pages} page(s) · run {run.id} · `{run.template}` · "
        f"`{run.profile}` / `{run.model}` · status **{run.status}**"
    )
    tokens = f"{run.prompt_tokens or 0:,} prompt + {run.completion_tokens or 0:,} answer tokens"
    seconds = run.timings.get("total_s")
    st.caption(tokens + (f" · {seconds:.1f} s" if seconds else "") + f" · {run.created_at:%Y-%m-%d %H:%M} UTC")
    question = getattr(run, "question", None)
    if question:
        st.markdown(f"**Question:** {question}")
        answer = (run.result or {}).get("answer")
        st.markdown(f"**Answer:** {answer or '_(no answer)_'}")


def exports(view: RunView, key: str) -> None:
    name, run_id = Path(view.document.path).stem, view.run.id
    one, two, _ = st.columns([1, 1, 4])
    one.download_button(
        "Export JSON", export_json([view]), f"{name}-run{run_id}.json", "application/json", key=f"{key}_json"
    )
    two.download_button("Export CSV", export_csv([view]), f"{name}-run{run_id}.csv", "text/csv", key=f"{key}_csv")


def verdict_line(view: RunView) -> None:
    """The run's evidence in one line: its verdict (grounding.GroundingSummary.verdict) and the counts."""
    from docanalyst.grounding import summarise
    from docanalyst.store import grounded_field

    summary = summarise([grounded_field(f) for f in view.fields])
    colour = {"grounded": "green", "weak": "orange", "ungrounded": "red"}[str(summary.verdict)]
    st.markdown(
        f"Evidence: :{colour}[**{summary.verdict}**] — {summary.verified} of {summary.asserted} value(s) backed by a "
        f"quote found in the document that says them"
        + (f" · {summary.too_short} quote(s) too short" if summary.too_short else "")
        + (f" · {summary.unsupported} quote(s) that do not say their value" if summary.unsupported else "")
    )


def show_run(page: Page, view: RunView, key: str, *, remember: bool = True) -> None:
    """One run, in full: the review workspace. ``key`` keeps the widgets of two runs on one page apart;
    ``remember`` puts the run in the address (``?run=ID``), so a reload or a shared link opens it again."""
    password = page.password(view.document.sha256)
    info = document_info(view.document.path, password) if Path(view.document.path).exists() else None
    if remember and view.run.id is not None:
        st.query_params["run"] = str(view.run.id)
    header(view)
    for warning in run_warnings(view, info["warnings"] if info else []):
        st.warning(warning)
    if not view.fields:
        st.info("No fields were stored for this run.")
        exports(view, key)
        return
    verdict_line(view)
    workspace(page, view, info, key)
    exports(view, key)
