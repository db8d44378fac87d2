"""``show_run``: one stored run, the same way wherever a run is shown (fresh results, History, an answer to a
question): its header, warnings, the values with their confidence and evidence, the quoted page, exports."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

from docanalyst.errors import DocanalystError
from webapp import evidence as ev
from webapp.cached import document_info, page_image
from webapp.runs import RunView, export_csv, export_json, run_warnings
from webapp.views.context import Page

COLUMNS = {
    "field": st.column_config.TextColumn("field", width="medium"),
    "value": st.column_config.TextColumn("value", width="medium"),
    "confidence": st.column_config.ProgressColumn(
        "confidence", width="small", min_value=0.0, max_value=1.0, format="%.2f",
        help="How sure the model was of this value (0-1), from its token probabilities.",
    ),
    "page": st.column_config.NumberColumn("page", width="small"),
    "evidence": st.column_config.TextColumn("evidence", width="medium"),
    "quote": st.column_config.TextColumn("quote", width="large"),
}  # fmt: skip


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


def confidence_filter(fields: list[Any], key: str) -> list[Any]:
    """A slider that hides values below a confidence (the ``--min-confidence`` rule); the fields shown."""
    scores = [c for c in (ev.confidence_of(f) for f in fields) if c is not None]
    if not scores:
        return fields
    minimum = st.slider(
        "Hide values with a confidence below", 0.0, 1.0, 0.0, 0.05, key=f"{key}_min_conf",
        help="Low-confidence values are the ones to check first. Values stored without a score are always shown.",
    )  # fmt: skip
    shown = ev.shown_fields(fields, minimum or None)
    low = sum(1 for c in scores if c < 0.5)
    hidden = len(fields) - len(shown)
    st.caption(
        f"{low} of {len(scores)} value(s) have a confidence below 0.50"
        + (f" · {hidden} hidden by the filter" if hidden else "")
    )
    return shown


def pick_row(key: str, labels: list[str]) -> None:
    """A click on a table row picks that value for the evidence view (runs before the rerun draws it)."""
    picked = st.session_state.get(f"{key}_table")
    rows = picked.selection.rows if picked is not None else []
    if rows and rows[0] < len(labels):
        st.session_state[f"{key}_field"] = labels[rows[0]]


def values_table(fields: list[Any], key: str) -> Any:
    """The values as a table and a picker of the one whose evidence is shown; the field picked."""
    rows = ev.field_rows(fields)
    labels = [f"{r['field']} — {(r['value'] or '(empty)')[:60]}" for r in rows]
    state, select_key = st.session_state, f"{key}_field"
    st.dataframe(rows, hide_index=True, width="stretch", key=f"{key}_table", on_select=partial(pick_row, key, labels),
                 selection_mode="single-row", column_config=COLUMNS)  # fmt: skip
    if select_key not in state or state[select_key] not in labels:
        preferred = [i for i, f in enumerate(fields) if ev.is_found(f)]  # open on a value whose quote was found
        preferred += [i for i, f in enumerate(fields) if f.quote and f.page]
        state[select_key] = labels[preferred[0] if preferred else 0]
    chosen = st.selectbox("Show the evidence for", labels, key=select_key)
    return fields[labels.index(chosen)]


def evidence_text(view: RunView, field: Any) -> None:
    st.markdown(f"**{field.path}**")
    st.markdown(f"Value: {field.value or '_(empty: the model found nothing)_'}")
    confidence = ev.confidence_of(field)
    if confidence is not None:
        st.markdown(f"Confidence: {confidence:.2f}")
    if field.quote:
        st.markdown("Quote:")
        st.markdown("> " + field.quote.replace("\n", " "))
    st.markdown(f"Cited page: {field.page or '—'}")
    st.markdown(f"Evidence: {ev.evidence_label(field)}")
    if ev.on_other_page(field):
        st.markdown(f"The quote is on page {field.found_page}; that page is shown.")


def image_caption(field: Any, page_no: int, pages: int, hits: int, info: dict[str, Any] | None) -> str:
    if hits:
        caption = f"page {page_no} of {pages}: the quote is highlighted"
    elif field.quote:
        caption = f"page {page_no} of {pages}: the quote is not on this page (nothing highlighted)"
    else:
        caption = f"page {page_no} of {pages}: no quote to highlight"
    if info and page_no in info["pages_without_text"]:
        caption += " · this page has no text layer (a scan): the model could not read it"
    return caption


def evidence_page(view: RunView, field: Any, info: dict[str, Any] | None, password: str | None) -> None:
    """The page the quote is on, drawn (in a child process) with the quote highlighted."""
    doc = view.document
    page_no = ev.evidence_page(field)
    if not Path(doc.path).exists():
        st.info("The original PDF is not on this server any more, so the page cannot be shown.")
        return
    if page_no is None:
        st.info("The model cited no page for this value: nothing to show.")
        return
    quote = ev.highlight_text(field, info["text"] if info else None)
    try:
        png, hits = page_image(doc.path, page_no, quote, password)
    except DocanalystError as exc:
        st.warning(str(exc))
        return
    st.image(png, caption=image_caption(field, page_no, doc.pages, hits, info), width="stretch")


def exports(view: RunView, key: str) -> None:
    name, run_id = Path(view.document.path).stem, view.run.id
    one, two, _ = st.columns([1, 1, 4])
    one.download_button(
        "Export JSON", export_json([view]), f"{name}-run{run_id}.json", "application/json", key=f"{key}_json"
    )
    two.download_button("Export CSV", export_csv([view]), f"{name}-run{run_id}.csv", "text/csv", key=f"{key}_csv")


def show_run(page: Page, view: RunView, key: str) -> None:
    """One run, in full. ``key`` keeps the widgets of two runs on one page apart."""
    password = page.password(view.document.sha256)
    info = document_info(view.document.path, password) if Path(view.document.path).exists() else None
    header(view)
    for warning in run_warnings(view, info["warnings"] if info else []):
        st.warning(warning)
    if not view.fields:
        st.info("No fields were stored for this run.")
        return
    fields = confidence_filter(view.fields, key)
    if not fields:
        st.info("Every value is below the confidence filter: lower it to see them.")
    else:
        field = values_table(fields, key)
        left, right = st.columns([2, 3])
        with left:
            evidence_text(view, field)
        with right:
            evidence_page(view, field, info, password)
    exports(view, key)
