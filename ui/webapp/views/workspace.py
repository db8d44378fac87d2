"""The review workspace of one run: the document's page on the left, the fields on the right.

A click on a field opens its page with the evidence boxed (only the located span, not every occurrence of the
words); zoom and page turn are beside the page. Filters narrow the list to what needs a look (unverified, low
confidence, reviewed). Under the chosen field, a reviewer accepts, edits or rejects its value and may attach a
quote copied from the page: the quote is checked against the document (reviewing.py, the same service as
`docanalyst review`), the model's answer is kept, and each decision is a new revision with who and when.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from docanalyst.errors import DocanalystError
from docanalyst.reviewing import Correction, review
from docanalyst.revisions import latest, revisions_of
from docanalyst.statuses import ReviewAction
from webapp import evidence as ev
from webapp.cached import page_image
from webapp.runs import RunView
from webapp.views.context import Page

FILTERS = ("All", "Unverified", "Low confidence", "Reviewed")
ZOOMS = (100, 150, 200, 300)
ACTIONS = {"Accept": ReviewAction.ACCEPTED, "Edit": ReviewAction.EDITED, "Reject": ReviewAction.REJECTED}
LOW = 0.5


def workspace(page: Page, view: RunView, info: dict[str, Any] | None, key: str) -> None:
    """Fields and document side by side, with the chosen field's review form."""
    reviews = latest(revisions_of(page.store, [int(view.run.id or 0)]).get(int(view.run.id or 0), []))
    fields = filtered(view.fields, reviews, key)
    if not fields:
        st.info("No value matches this filter.")
        return
    field = chosen(fields, key)
    doc_col, fields_col = st.columns([3, 2], gap="medium")
    with fields_col:
        field_list(fields, reviews, field, key)
        details(field, reviews.get(field.path))
        review_form(page, view, field, reviews.get(field.path), key)
    with doc_col:
        document_pane(page, view, field, info, key)


def filtered(fields: list[Any], reviews: dict[str, Any], key: str) -> list[Any]:
    choice = st.radio("Show", FILTERS, horizontal=True, key=f"{key}_filter", label_visibility="collapsed")
    if choice == "Unverified":
        return [f for f in fields if ev.unverified(f)]
    if choice == "Low confidence":
        return [f for f in fields if (c := ev.confidence_of(f)) is not None and c < LOW]
    if choice == "Reviewed":
        return [f for f in fields if f.path in reviews]
    return fields


def chosen(fields: list[Any], key: str) -> Any:
    """The field picked by a click, else the first with verified evidence, else the first."""
    paths = [f.path for f in fields]
    picked = st.session_state.get(f"{key}_field")
    if picked not in paths:
        found = [f.path for f in fields if ev.is_found(f)]
        picked = st.session_state[f"{key}_field"] = found[0] if found else paths[0]
    return fields[paths.index(picked)]


def _pick(key: str, path: str) -> None:
    st.session_state[f"{key}_field"] = path


def field_list(fields: list[Any], reviews: dict[str, Any], current: Any, key: str) -> None:
    with st.container(height=420, border=True):
        for i, f in enumerate(fields):
            mark = "✓" if ev.is_found(f) else ("–" if not f.quote else "✗")
            reviewed = reviews.get(f.path)
            value = reviewed.value if reviewed is not None else f.value
            badge = f" · ✎ {reviewed.action}" if reviewed is not None else ""
            text = f"{mark} **{ev.label_of(f.path)}** · {(value or '(empty)')[:48]}{badge}"
            st.button(text, key=f"{key}_pick_{i}", on_click=_pick, args=(key, f.path), width="stretch",
                      type="primary" if f.path == current.path else "secondary")  # fmt: skip


def details(field: Any, reviewed: Any) -> None:
    st.markdown(f"**{ev.label_of(field.path)}** (`{field.path}`)")
    st.markdown(f"Model's value: {field.value or '_(empty: the model found nothing)_'}")
    confidence = ev.confidence_of(field)
    if confidence is not None:
        st.markdown(f"Confidence: {confidence:.2f}")
    if field.quote:
        st.markdown("> " + field.quote.replace("\n", " "))
    st.markdown(f"Evidence: {ev.evidence_label(field)}")
    if reviewed is not None:
        verb = {"accepted": "accepted", "edited": "corrected to", "rejected": "rejected"}[reviewed.action]
        shown = f" **{reviewed.value}**" if reviewed.action == "edited" else ""
        st.success(f"Reviewed: {verb}{shown} by {reviewed.reviewer}, {reviewed.created_at:%Y-%m-%d %H:%M} UTC")


def review_form(page: Page, view: RunView, field: Any, reviewed: Any, key: str) -> None:
    form_key = f"{key}_review_{field.path}"
    with st.form(form_key, border=True):
        action = st.radio("Decision", list(ACTIONS), horizontal=True, key=f"{form_key}_action")
        start = reviewed.value if reviewed is not None and reviewed.value else field.value or ""
        value = st.text_input("Correct value (for Edit)", value=start, key=f"{form_key}_value")
        quote = st.text_area("Evidence: words copied from the page (optional)", key=f"{form_key}_quote", height=68)
        page_no = st.number_input("Page of that quote", 1, max(1, view.document.pages), key=f"{form_key}_page",
                                  value=int(field.found_page or field.page or 1))  # fmt: skip
        default_reviewer = st.session_state.get("reviewer") or os.environ.get("DOCANALYST_REVIEWER", "")
        reviewer = st.text_input("Reviewer", value=default_reviewer, key=f"{form_key}_by")
        if not st.form_submit_button("Save review"):
            return
    st.session_state["reviewer"] = reviewer
    correction = Correction(field.path, ACTIONS[action], value if action == "Edit" else None,
                            quote.strip() or None, int(page_no) if quote.strip() else None)  # fmt: skip
    try:
        review(page.store, int(view.run.id or 0), [correction], reviewer or "", read_document=_reader(page, view))
    except DocanalystError as exc:
        st.error(str(exc))
        return
    st.rerun()


def _reader(page: Page, view: RunView) -> Any:
    from docanalyst.pipeline import ExtractOptions

    password = page.password(view.document.sha256)
    return lambda path: page.analyzer().load(path, ExtractOptions(password=password))


def document_pane(page: Page, view: RunView, field: Any, info: dict[str, Any] | None, key: str) -> None:
    doc = view.document
    if not Path(doc.path).exists():
        st.info("The original PDF is not on this server any more, so its pages cannot be shown.")
        return
    evidence_page = ev.evidence_page(field) or 1
    turn, zoom_col = st.columns([1, 2])
    # one page widget per field: a click on another field turns to that field's evidence
    page_no = int(turn.number_input("Page", 1, max(1, doc.pages), value=evidence_page,
                                    key=f"{key}_page_{field.path}"))  # fmt: skip
    zoom = zoom_col.select_slider("Zoom (%)", ZOOMS, value=100, key=f"{key}_zoom",
                                  help="Above 100 %, the part of the page around the boxed evidence.")  # fmt: skip
    on_page = page_no == evidence_page
    text = info["text"] if info else None
    quote = ev.highlight_text(field, text) if on_page else None
    where = ev.occurrence(field, text, info.get("page_starts") if info else None) if on_page else None
    try:
        png, hits = page_image(doc.path, page_no, quote, page.password(doc.sha256), where, zoom / 100)
    except DocanalystError as exc:
        st.warning(str(exc))
        return
    with st.container(height=760, border=True):
        st.image(png, caption=caption(field, page_no, doc.pages, hits, info), width="stretch")


def caption(field: Any, page_no: int, pages: int, hits: int, info: dict[str, Any] | None) -> str:
    if hits:
        text = f"page {page_no} of {pages}: the evidence for {ev.label_of(field.path)} is boxed"
    elif field.quote_status == "too_short":
        text = f"page {page_no} of {pages}: the quote is too short to be evidence (nothing marked)"
    elif field.quote:
        text = f"page {page_no} of {pages}: the quote is not on this page (nothing marked)"
    else:
        text = f"page {page_no} of {pages}: no quote to mark"
    if info and page_no in info["pages_without_text"]:
        text += " · this page has no text layer (a scan): the model could not read it"
    return text
