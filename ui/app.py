"""docanalyst in the browser: upload PDFs, check the token budget, extract, and see each value's quote on its page.

Start it with ``docanalyst ui`` (Streamlit options pass through, e.g. ``--server.port 8502``) or
``streamlit run ui/app.py``. The engine is loaded once per server process, in the background, and runs are
serialised; the database is the same one the command line uses (``DOCANALYST_DB`` / ``DOCANALYST_HOME``).
"""

from __future__ import annotations

import atexit
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app_support as sup

from docanalyst.config import Settings
from docanalyst.errors import DocanalystError, EncryptedPdfError
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import PROFILES, default_profile_name, get_profile, gpu_visible
from docanalyst.store import Store

TEMPLATES = {
    "contract": "Contract: parties, dates, term, renewal, notice, governing law, termination, liability, payment",
    "paper": "Paper: title, authors, abstract, contributions, methods, datasets, results, limitations",
    "generic": "Generic: summary, key points, entities, dates",
}
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RUN_TIMEOUT_S = 60 * 60


# ---- process-wide resources ----------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def get_holder() -> sup.EngineHolder:
    holder = sup.EngineHolder(Settings.from_env())
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
        "verdict": verdict,
    }


@st.cache_data(show_spinner=False, max_entries=256)
def page_image(path: str, page: int, quote: str | None, password: str | None) -> tuple[bytes, int]:
    return sup.render_page(path, page, quote, password)


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
    }


def highlight_text(field: Any, info: dict[str, Any] | None) -> str | None:
    """What to look for on the page: the document's own words where grounding located the quote (a normalised
    or fuzzy match differs from the model's spelling), else the quote as the model wrote it."""
    start, end = getattr(field, "span_start", None), getattr(field, "span_end", None)
    if info and sup.is_found(field) and start is not None and end is not None and end > start:
        return str(info["text"][start:end])
    return field.quote


def main() -> None:
    st.set_page_config(page_title="docanalyst", page_icon="📄", layout="wide")
    settings = Settings.from_env()
    holder = get_holder()
    try:
        store = get_store(settings.db_url)
    except DocanalystError as exc:
        st.error(str(exc))
        st.stop()

    state = st.session_state
    state.setdefault("samples", [])  # sample files added with the button: (name, path, sha256)
    state.setdefault("passwords", {})  # sha256 -> password, this browser session only
    state.setdefault("results", None)  # {"run_ids": [...], "errors": [...], "notes": [...]}

    # ---- sidebar: what to run and with what ----------------------------------------------------------
    with st.sidebar:
        st.header("Settings")
        template = st.selectbox(
            "Template", list(TEMPLATES), format_func=lambda t: t, key="template", help="What to extract."
        )
        st.caption(TEMPLATES[template])
        profile_names = list(PROFILES)
        default_profile = default_profile_name(settings.profile)
        profile_name = st.selectbox(
            "Engine profile",
            profile_names,
            index=profile_names.index(default_profile) if default_profile in profile_names else 0,
            key="profile",
            help="embedded runs on the CPU and is small; qwen3-next needs a GPU.",
        )
        profile = get_profile(profile_name)
        st.caption(f"{profile.description} · window {profile.max_model_len:,} tokens")
        force = st.checkbox(
            "Recompute stored runs", value=False, key="force", help="Otherwise an identical stored run is reused."
        )

        def engine_status() -> None:
            status, name, seconds = holder.state()
            if status == "idle":
                st.caption("Engine: not loaded yet (it starts when you add a document).")
            elif status == "loading":
                st.info(f"Engine '{name}' loading… {seconds:.0f} s (the page stays usable)")
            elif status == "ready":
                st.success(f"Engine '{name}' ready (loaded in {seconds:.0f} s)")
            else:
                st.error(f"Engine: {holder.error}")

        st.fragment(engine_status, run_every=2.0 if holder.state()[0] == "loading" else None)()
        st.caption(f"Database: `{settings.db_url}`")

    def model_ref_for(profile_name: str) -> str | None:
        try:
            ref, _ = Analyzer(settings).resolve_model(get_profile(profile_name), None)
        except DocanalystError as exc:
            st.error(str(exc))
            return None
        return ref

    # ---- results view (used for fresh runs and for history) ------------------------------------------
    def show_run(view: sup.RunView, key: str) -> None:
        run, doc = view.run, view.document
        path_exists = Path(doc.path).exists()
        password = state.passwords.get(doc.sha256)
        info = document_info(doc.path, password) if path_exists else None
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
        for warning in sup.run_warnings(view, info["warnings"] if info else []):
            st.warning(warning)

        if not view.fields:
            st.info("No fields were stored for this run.")
            return
        rows = sup.field_rows(view.fields)
        labels = [f"{r['field']} — {(r['value'] or '(empty)')[:60]}" for r in rows]
        select_key = f"{key}_field"

        def on_table_select() -> None:
            picked = state.get(f"{key}_table")
            chosen = picked.selection.rows if picked is not None else []
            if chosen:
                state[select_key] = labels[chosen[0]]

        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            key=f"{key}_table",
            on_select=on_table_select,
            selection_mode="single-row",
            column_config={
                "field": st.column_config.TextColumn("field", width="medium"),
                "value": st.column_config.TextColumn("value", width="medium"),
                "page": st.column_config.NumberColumn("page", width="small"),
                "evidence": st.column_config.TextColumn("evidence", width="medium"),
                "quote": st.column_config.TextColumn("quote", width="large"),
            },
        )
        if select_key not in state or state[select_key] not in labels:
            preferred = [i for i, f in enumerate(view.fields) if f.quote_status in ("found", "other_page")]
            preferred += [i for i, f in enumerate(view.fields) if f.quote and f.page]
            state[select_key] = labels[preferred[0] if preferred else 0]
        chosen = st.selectbox("Show the evidence for", labels, key=select_key)
        field = view.fields[labels.index(chosen)]

        left, right = st.columns([2, 3])
        with left:
            st.markdown(f"**{field.path}**")
            st.markdown(f"Value: {field.value or '_(empty: the model found nothing)_'}")
            if field.quote:
                st.markdown("Quote:")
                st.markdown("> " + field.quote.replace("\n", " "))
            st.markdown(f"Cited page: {field.page or '—'}")
            st.markdown(f"Evidence: {sup.evidence_label(field)}")
            if sup.on_other_page(field):
                st.markdown(f"The quote is on page {field.found_page}; that page is shown.")
        with right:
            page_no = sup.evidence_page(field)
            if not path_exists:
                st.info("The original PDF is not on this server any more, so the page cannot be shown.")
            elif page_no is None:
                st.info("The model cited no page for this value: nothing to show.")
            else:
                try:
                    png, hits = page_image(doc.path, page_no, highlight_text(field, info), password)
                except DocanalystError as exc:
                    st.warning(str(exc))
                else:
                    if hits:
                        caption = f"page {page_no} of {doc.pages}: the quote is highlighted"
                    elif field.quote:
                        caption = f"page {page_no} of {doc.pages}: the quote is not on this page (nothing highlighted)"
                    else:
                        caption = f"page {page_no} of {doc.pages}: no quote to highlight"
                    if info and page_no in info["pages_without_text"]:
                        caption += " · this page has no text layer (a scan): the model could not read it"
                    st.image(png, caption=caption, width="stretch")

        name = Path(doc.path).stem
        one, two, _ = st.columns([1, 1, 4])
        one.download_button(
            "Export JSON", sup.export_json([view]), f"{name}-run{run.id}.json", "application/json", key=f"{key}_json"
        )
        two.download_button(
            "Export CSV", sup.export_csv([view]), f"{name}-run{run.id}.csv", "text/csv", key=f"{key}_csv"
        )

    def follow(job: sup.RunJob, bar: Any) -> tuple[list[Any], list[str]]:
        """Draw a job's progress until it ends (the work runs on its own thread); (outcomes, errors)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not job.done and time.monotonic() < deadline:
            status, name, seconds = holder.state()
            stages = ", ".join(f"{Path(p).name}: {s}" for p, s in job.stages.items())
            if job.waiting_for_lock:
                text = "waiting for another analysis on this server to finish…"
            elif status == "loading":
                text = f"starting the engine '{name}' ({seconds:.0f} s)… {stages}"
            else:
                text = f"{stages} · {time.monotonic() - job.started:.0f} s"
            bar.progress(min(job.fraction, 0.99), text=text)
            time.sleep(0.3)
        bar.progress(1.0, text="done")
        if not job.done:
            return [], ["this is taking too long; it continues on the server: look in History later"]
        if job.error is not None:
            return [], [str(job.error).splitlines()[0] if str(job.error) else type(job.error).__name__]
        return list(job.outcomes or []), []

    def ask_box(view: sup.RunView, key: str) -> None:
        """A question about the whole document, answered with quotes (``Analyzer.ask``), shown like a run."""
        if not hasattr(Analyzer, "ask") or not Path(view.document.path).exists():
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
                model_ref = model_ref_for(view.run.profile)
                if model_ref is None:
                    return
                holder.ensure(get_profile(view.run.profile), model_ref)
                analyzer = Analyzer(settings, store=store, engine_factory=sup.engine_factory_for(holder))
                options = ExtractOptions(
                    profile=view.run.profile, password=state.passwords.get(view.document.sha256), force=force
                )
                job = sup.start_ask(holder, analyzer, options, view.document.path, question.strip())
                outcomes, errors = follow(job, st.progress(0.0, text="asking…"))
                state[asked_key] = {
                    "run_ids": [o.run_id for o in outcomes if o.run_id is not None],
                    "errors": errors + [str(o.error) for o in outcomes if o.error],
                }
            asked = state.get(asked_key)
            if asked:
                for message in asked["errors"]:
                    st.error(message)
                for run_id in asked["run_ids"]:
                    answer = sup.load_run(store, run_id)
                    if answer is not None:
                        show_run(answer, key=f"{key}_answer{run_id}")

    # ---- page ------------------------------------------------------------------------------------------
    st.title("docanalyst")
    st.caption(
        "Whole-document extraction with evidence: each value comes with a verbatim quote and its page, "
        "checked against the PDF."
    )
    analyse_tab, history_tab, eval_tab = st.tabs(["Analyse", "History", "Evaluations"])

    with analyse_tab:
        st.subheader("1 · Documents")
        uploads = st.file_uploader(
            f"PDF files (up to {sup.MAX_UPLOAD_MB} MB each, {sup.MAX_FILES} at a time)",
            type=["pdf"],
            accept_multiple_files=True,
            max_upload_size=sup.MAX_UPLOAD_MB,  # the browser refuses bigger files before sending them
            key="uploads",
        )
        sample_files = sorted(SAMPLES.glob("*.pdf")) if SAMPLES.is_dir() else []
        if sample_files:
            pick, add = st.columns([3, 1], vertical_alignment="bottom")
            sample = pick.selectbox("…or try a sample", [p.name for p in sample_files], key="sample_pick")
            if add.button("Add sample", key="add_sample"):
                data = (SAMPLES / sample).read_bytes()
                saved = sup.save_upload(settings.home, sample, data)
                if all(s[1] != str(saved.path) for s in state.samples):
                    state.samples.append((saved.name, str(saved.path), saved.sha256))

        files: list[sup.SavedUpload] = []
        for upload in (uploads or [])[: sup.MAX_FILES]:
            try:
                files.append(sup.save_upload(settings.home, upload.name, upload.getvalue()))
            except (sup.UploadError, OSError) as exc:
                st.error(str(exc))
        if uploads and len(uploads) > sup.MAX_FILES:
            st.warning(f"only the first {sup.MAX_FILES} files are used")
        for name, path, sha in state.samples:
            p = Path(path)
            if p.exists():
                files.append(sup.SavedUpload(name, name, p, sha, p.stat().st_size))
        seen: set[str] = set()
        files = [f for f in files if not (str(f.path) in seen or seen.add(str(f.path)))]  # type: ignore[func-returns-value]

        runnable: list[str] = []
        if files:
            if state.samples and st.button("Clear samples", key="clear_samples"):
                state.samples = []
                st.rerun()
            st.subheader("2 · Token budget")
            table = []
            for f in files:
                password = state.passwords.get(f.sha256)
                budget = budget_for(str(f.path), template, profile_name, password)
                if budget["error"] and budget.get("encrypted"):
                    st.warning(f"**{f.name}** is encrypted: {budget['error'].split(': ', 1)[-1]}")
                    entered = st.text_input(f"Password for {f.name}", type="password", key=f"pw_{f.path.parent.name}")
                    if entered and entered != password:
                        state.passwords[f.sha256] = entered
                        st.rerun()
                    table.append(
                        {
                            "document": f.name,
                            "pages": None,
                            "tokens": None,
                            "needed / window": "",
                            "verdict": "password needed",
                        }
                    )
                    continue
                if budget["error"]:
                    st.error(budget["error"])
                    table.append(
                        {
                            "document": f.name,
                            "pages": None,
                            "tokens": None,
                            "needed / window": "",
                            "verdict": "✗ unreadable",
                        }
                    )
                    continue
                kind = "" if budget["exact"] else " (estimate)"
                verdict = "✓ fits" if budget["fits"] else f"✗ {budget['verdict']}"
                table.append(
                    {
                        "document": f.name,
                        "pages": budget["pages"],
                        "tokens": f"{budget['tokens']:,}{kind}",
                        "needed / window": f"{budget['needed']:,} / {budget['window']:,}",
                        "verdict": verdict,
                    }
                )
                for warning in budget["warnings"]:
                    st.warning(f"{f.name}: {warning}")
                if not budget["fits"]:
                    st.warning(
                        f"{f.name}: over budget — it needs {budget['needed']:,} tokens but profile "
                        f"'{profile_name}' has a {budget['window']:,}-token window ({budget['verdict']}). "
                        "It is skipped; pick a profile with a longer window."
                    )
                else:
                    runnable.append(str(f.path))
            st.dataframe(table, hide_index=True, width="stretch", key="budget_table")

            model_ref = model_ref_for(profile_name) if runnable else None
            if model_ref is not None and (profile.device == "cpu" or gpu_visible()):
                holder.ensure(profile, model_ref)  # starts loading in the background; returns at once

            st.subheader("3 · Analyse")
            clicked = st.button(
                f"Analyse {len(runnable)} document(s)",
                type="primary",
                disabled=not runnable or model_ref is None,
                key="run",
            )
            if clicked and runnable:
                options = ExtractOptions(
                    template=template,
                    profile=profile_name,
                    force=force,
                    password=None,
                )
                # One password per run in the pipeline: encrypted files with different passwords run one by one.
                groups: dict[str | None, list[str]] = {}
                by_path = {str(f.path): f for f in files}
                for path in runnable:
                    groups.setdefault(state.passwords.get(by_path[path].sha256), []).append(path)
                analyzer = Analyzer(settings, store=store, engine_factory=sup.engine_factory_for(holder))
                bar = st.progress(0.0, text="starting…")
                outcomes: list[Any] = []
                errors: list[str] = []
                for password, paths in groups.items():
                    job = sup.start_run(holder, analyzer, replace(options, password=password), paths)
                    done, failed = follow(job, bar)
                    outcomes += done
                    errors += failed
                state.pop("history_open", None)  # History opens the newest run next
                names = {str(f.path): f.name for f in files}
                state.results = {
                    "run_ids": [o.run_id for o in outcomes if o.run_id is not None],
                    "errors": errors + [f"{names.get(o.path, o.path)}: {o.error}" for o in outcomes if o.error],
                    "notes": [f"{names.get(o.path, o.path)}: {n}" for o in outcomes for n in o.notes],
                }
        else:
            st.info("Add one or more PDFs to see their token budget and analyse them.")

        results = state.results
        if results:
            st.subheader("4 · Results")
            for message in results["errors"]:
                st.error(message)
            for note in results["notes"]:
                st.info(note)
            views = [v for v in (sup.load_run(store, i) for i in results["run_ids"]) if v is not None]
            if views:
                if len(views) > 1:
                    labels = [v.label for v in views]
                    picked = st.selectbox("Document", labels, key="result_pick")
                    view = views[labels.index(picked)]
                else:
                    view = views[0]
                show_run(view, key=f"res{view.run.id}")
                ask_box(view, key=f"res{view.run.id}")
                if len(views) > 1:
                    one, two, _ = st.columns([1, 1, 4])
                    one.download_button(
                        "Export all (JSON)", sup.export_json(views), "docanalyst-runs.json", key="all_json"
                    )
                    two.download_button("Export all (CSV)", sup.export_csv(views), "docanalyst-runs.csv", key="all_csv")

    with eval_tab:
        evaluations_tab(store)

    with history_tab:
        rows = sup.history_rows(store)
        if not rows:
            st.info("No runs stored yet. Analysed documents appear here.")
        else:
            st.dataframe(rows, hide_index=True, width="stretch", key="history_table")
            run_ids = [int(r["run"]) for r in rows]
            label_of = {
                int(r["run"]): f"run {r['run']} · {r['document']} · {r['template']} · {r['when (UTC)']}" for r in rows
            }

            st.subheader("Re-open a run")
            opened = st.selectbox("Run", run_ids, format_func=lambda i: label_of[i], key="history_open")
            opened_view = sup.load_run(store, opened)
            if opened_view is not None:
                show_run(opened_view, key=f"hist{opened}")
                ask_box(opened_view, key=f"hist{opened}")

            st.subheader("Compare two runs")
            if len(run_ids) < 2:
                st.caption("Needs at least two stored runs.")
            else:
                a_col, b_col = st.columns(2)
                a_id = a_col.selectbox("Run A", run_ids, index=1, format_func=lambda i: label_of[i], key="cmp_a")
                b_id = b_col.selectbox("Run B", run_ids, index=0, format_func=lambda i: label_of[i], key="cmp_b")
                va, vb = sup.load_run(store, a_id), sup.load_run(store, b_id)
                if va is not None and vb is not None:
                    compared = sup.compare_rows(va, vb)
                    differ = sum(1 for r in compared if r["same"] != "=")
                    st.caption(f"{differ} of {len(compared)} field value(s) differ")
                    st.dataframe(compared, hide_index=True, width="stretch", key="compare_table")

            st.subheader("Delete a run")
            doomed = st.selectbox("Run to delete", run_ids, format_func=lambda i: label_of[i], key="del_pick")
            sure = st.checkbox("Yes, delete it and its fields from the database", key="del_sure")
            if st.button(f"Delete run {doomed}", disabled=not sure, key="del_button"):
                sup.delete_run(store, doomed)
                if state.results:
                    state.results["run_ids"] = [i for i in state.results["run_ids"] if i != doomed]
                state.pop("del_sure", None)
                st.toast(f"run {doomed} deleted")
                st.rerun()

            one, two, _ = st.columns([1, 1, 4])
            all_views = [v for v in (sup.load_run(store, i) for i in run_ids) if v is not None]
            one.download_button(
                "Export history (JSON)", sup.export_json(all_views), "docanalyst-history.json", key="hist_json"
            )
            two.download_button(
                "Export history (CSV)", sup.export_csv(all_views), "docanalyst-history.csv", key="hist_csv"
            )


def evaluations_tab(store: Store) -> None:
    """Stored `docanalyst eval` results: how often each field is right, per model/template/profile."""
    evaluations = store.list_evaluations(200)
    if not evaluations:
        st.info(
            "No evaluations stored yet. Measure quality on labelled documents with "
            "`docanalyst eval --dataset cuad` (or a folder of your own PDFs with a labels.csv); results appear here."
        )
        return
    st.dataframe(sup.evaluation_rows(evaluations), hide_index=True, width="stretch", key="eval_table")
    by_id = {ev.id: ev for ev in evaluations}
    picked = st.selectbox(
        "Evaluation",
        list(by_id),
        format_func=lambda i: f"#{i} · {by_id[i].dataset} · {by_id[i].profile} ({by_id[i].model})",
        key="eval_pick",
    )
    loaded = store.get_evaluation(picked)
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
    st.bar_chart(sup.evaluation_chart_data([evaluation]), horizontal=True, y_label="F1 (0-1)", height=320)
    st.dataframe(sup.evaluation_field_rows(evaluation), hide_index=True, width="stretch", key="eval_fields")
    st.dataframe(sup.evaluation_document_rows(items), hide_index=True, width="stretch", key="eval_documents")
    st.download_button(
        "Report (Markdown)",
        sup.evaluation_markdown(evaluation, items),
        f"docanalyst-evaluation-{evaluation.id}.md",
        key="eval_report",
    )
    if len(evaluations) > 1:
        st.subheader("Compare evaluations")
        chosen = st.multiselect(
            "Evaluations", list(by_id), default=list(by_id)[:2], format_func=lambda i: f"#{i}", key="eval_compare"
        )
        if chosen:
            st.bar_chart(sup.evaluation_chart_data([by_id[i] for i in chosen]), horizontal=True, stack=False)


# Streamlit runs this file as __main__. vLLM's engine process (multiprocessing "spawn") re-imports it as
# __mp_main__: there it must only define things, never draw a page or load anything.
if __name__ == "__main__":
    main()
