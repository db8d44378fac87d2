"""The History tab: every stored run; re-open one (with ``show_run``), compare two, delete one, export all."""

from __future__ import annotations

import streamlit as st

from webapp.runs import compare_rows, delete_run, export_csv, export_json, history_rows, load_run
from webapp.views.ask import ask_box
from webapp.views.context import Page
from webapp.views.show_run import show_run


def reopen(page: Page, run_ids: list[int], label_of: dict[int, str]) -> None:
    st.subheader("Re-open a run")
    opened = st.selectbox("Run", run_ids, format_func=lambda i: label_of[i], key="history_open")
    view = load_run(page.store, opened)
    if view is not None:
        show_run(page, view, key=f"hist{opened}")
        ask_box(page, view, key=f"hist{opened}")


def compare(page: Page, run_ids: list[int], label_of: dict[int, str]) -> None:
    st.subheader("Compare two runs")
    if len(run_ids) < 2:
        st.caption("Needs at least two stored runs.")
        return
    a_col, b_col = st.columns(2)
    a_id = a_col.selectbox("Run A", run_ids, index=1, format_func=lambda i: label_of[i], key="cmp_a")
    b_id = b_col.selectbox("Run B", run_ids, index=0, format_func=lambda i: label_of[i], key="cmp_b")
    va, vb = load_run(page.store, a_id), load_run(page.store, b_id)
    if va is not None and vb is not None:
        compared = compare_rows(va, vb)
        differ = sum(1 for r in compared if r["same"] != "=")
        st.caption(f"{differ} of {len(compared)} field value(s) differ")
        st.dataframe(compared, hide_index=True, width="stretch", key="compare_table")


def delete(page: Page, run_ids: list[int], label_of: dict[int, str]) -> None:
    st.subheader("Delete a run")
    doomed = st.selectbox("Run to delete", run_ids, format_func=lambda i: label_of[i], key="del_pick")
    sure = st.checkbox("Yes, delete it and its fields from the database", key="del_sure")
    if st.button(f"Delete run {doomed}", disabled=not sure, key="del_button"):
        delete_run(page.store, doomed)
        if page.state.results:
            page.state.results["run_ids"] = [i for i in page.state.results["run_ids"] if i != doomed]
        page.state.pop("del_sure", None)
        st.toast(f"run {doomed} deleted")
        st.rerun()


def history_tab(page: Page) -> None:
    rows = history_rows(page.store)
    if not rows:
        st.info("No runs stored yet. Analysed documents appear here.")
        return
    st.dataframe(rows, hide_index=True, width="stretch", key="history_table")
    run_ids = [int(r["run"]) for r in rows]
    label_of = {int(r["run"]): f"run {r['run']} · {r['document']} · {r['template']} · {r['when (UTC)']}" for r in rows}
    reopen(page, run_ids, label_of)
    compare(page, run_ids, label_of)
    delete(page, run_ids, label_of)
    one, two, _ = st.columns([1, 1, 4])
    views = [v for v in (load_run(page.store, i) for i in run_ids) if v is not None]
    one.download_button("Export history (JSON)", export_json(views), "docanalyst-history.json", key="hist_json")
    two.download_button("Export history (CSV)", export_csv(views), "docanalyst-history.csv", key="hist_csv")
