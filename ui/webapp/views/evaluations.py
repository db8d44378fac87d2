"""The Evaluations tab: stored ``docanalyst eval`` results, how often each field is right, per
model/template/profile, and a comparison of several evaluations."""

from __future__ import annotations

import streamlit as st

from docanalyst.store import EvaluationRow, Store
from webapp import eval_rows as rows


def one_evaluation(store: Store, evaluation_id: int) -> None:
    loaded = store.get_evaluation(evaluation_id)
    if loaded is None:
        return
    evaluation, items = loaded
    summary = evaluation.summary
    grounding = summary["grounding"]
    st.caption(
        f"{evaluation.scored} of {evaluation.documents} documents scored, {evaluation.skipped} over the window, "
        f"{evaluation.failed} failed · quotes found {grounding['found']} of {grounding['quotes']} · "
        f"{summary['time']['wall_s']} s"
    )
    st.bar_chart(rows.evaluation_chart_data([evaluation]), horizontal=True, y_label="F1 (0-1)", height=320)
    st.dataframe(rows.evaluation_field_rows(evaluation), hide_index=True, width="stretch", key="eval_fields")
    st.dataframe(rows.evaluation_document_rows(items), hide_index=True, width="stretch", key="eval_documents")
    st.download_button(
        "Report (Markdown)",
        rows.evaluation_markdown(evaluation, items),
        f"docanalyst-evaluation-{evaluation.id}.md",
        key="eval_report",
    )


def compare(by_id: dict[int, EvaluationRow]) -> None:
    st.subheader("Compare evaluations")
    chosen = st.multiselect(
        "Evaluations", list(by_id), default=list(by_id)[:2], format_func=lambda i: f"#{i}", key="eval_compare"
    )
    if chosen:
        st.bar_chart(rows.evaluation_chart_data([by_id[i] for i in chosen]), horizontal=True, stack=False)


def evaluations_tab(store: Store) -> None:
    evaluations = store.list_evaluations(200)
    if not evaluations:
        st.info(
            "No evaluations stored yet. Measure quality on labelled documents with "
            "`docanalyst eval --dataset cuad` (or a folder of your own PDFs with a labels.csv); results appear here."
        )
        return
    st.dataframe(rows.evaluation_rows(evaluations), hide_index=True, width="stretch", key="eval_table")
    by_id = {ev.id: ev for ev in evaluations if ev.id is not None}
    picked = st.selectbox(
        "Evaluation",
        list(by_id),
        format_func=lambda i: f"#{i} · {by_id[i].dataset} · {by_id[i].profile} ({by_id[i].model})",
        key="eval_pick",
    )
    one_evaluation(store, picked)
    if len(evaluations) > 1:
        compare(by_id)
