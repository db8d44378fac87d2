"""The Analyse tab: 1 add PDFs (uploads or samples), 2 see their token budget, 3 run, 4 see the results with
``show_run`` and ask questions about them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

from docanalyst.pipeline import ExtractOptions
from docanalyst.profiles import get_profile, gpu_visible
from webapp.jobs import start_run
from webapp.runs import RunView, export_csv, export_json, load_run
from webapp.uploads import MAX_FILES, MAX_UPLOAD_MB, SavedUpload, UploadError, save_upload
from webapp.views.ask import ask_box
from webapp.views.budget import budget_table
from webapp.views.context import Page, follow
from webapp.views.show_run import show_run

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def add_sample(page: Page) -> None:
    sample_files = sorted(SAMPLES.glob("*.pdf")) if SAMPLES.is_dir() else []
    if not sample_files:
        return
    pick, add = st.columns([3, 1], vertical_alignment="bottom")
    sample = pick.selectbox("…or try a sample", [p.name for p in sample_files], key="sample_pick")
    if add.button("Add sample", key="add_sample"):
        saved = save_upload(page.settings.home, sample, (SAMPLES / sample).read_bytes())
        if all(s[1] != str(saved.path) for s in page.state.samples):
            page.state.samples.append((saved.name, str(saved.path), saved.sha256))


def documents(page: Page) -> list[SavedUpload]:
    """Step 1: the files to analyse, saved under the home (each path once)."""
    st.subheader("1 · Documents")
    uploads = st.file_uploader(
        f"PDF files (up to {MAX_UPLOAD_MB} MB each, {MAX_FILES} at a time)",
        type=["pdf"],
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,  # the browser refuses bigger files before sending them
        key="uploads",
    )
    add_sample(page)
    files: list[SavedUpload] = []
    for upload in (uploads or [])[:MAX_FILES]:
        try:
            files.append(save_upload(page.settings.home, upload.name, upload.getvalue()))
        except (UploadError, OSError) as exc:
            st.error(str(exc))
    if uploads and len(uploads) > MAX_FILES:
        st.warning(f"only the first {MAX_FILES} files are used")
    for name, path, sha in page.state.samples:
        p = Path(path)
        if p.exists():
            files.append(SavedUpload(name, name, p, sha, p.stat().st_size))
    unique = {str(f.path): f for f in reversed(files)}  # the first of each path wins
    return [f for f in files if unique[str(f.path)] is f]


def run(page: Page, files: list[SavedUpload], runnable: list[str], template: str) -> None:
    """Step 3: analyse the files that fit; one job per password (the pipeline takes one per run)."""
    options = ExtractOptions(template=template, profile=page.profile_name, force=page.force, password=None)
    groups: dict[str | None, list[str]] = {}
    by_path = {str(f.path): f for f in files}
    for path in runnable:
        groups.setdefault(page.password(by_path[path].sha256), []).append(path)
    analyzer, bar = page.analyzer(), st.progress(0.0, text="starting…")
    outcomes: list[Any] = []
    errors: list[str] = []
    for password, paths in groups.items():
        done, failed = follow(page, start_run(page.holder, analyzer, replace(options, password=password), paths), bar)
        outcomes += done
        errors += failed
    page.state.pop("history_open", None)  # History opens the newest run next
    names = {str(f.path): f.name for f in files}
    page.state.results = {
        "run_ids": [o.run_id for o in outcomes if o.run_id is not None],
        # a stored run's problem is shown once, with the run (show_run); here only what never became a run
        "errors": errors
        + [f"{names.get(o.path, o.path)}: {_message(o.error)}" for o in outcomes if o.error and o.run_id is None],
        "notes": [f"{names.get(o.path, o.path)}: {n}" for o in outcomes for n in o.notes],
    }


def _message(error: Any) -> str:
    """An error without the server's upload path (the file's name is put before it)."""
    return str(getattr(error, "message", None) or error)


def prepare_and_run(page: Page, files: list[SavedUpload], template: str) -> None:
    if page.state.samples and st.button("Clear samples", key="clear_samples"):
        page.state.samples = []
        st.rerun()
    runnable = budget_table(page, files, template)
    model_ref = page.model_ref_for(page.profile_name) if runnable else None
    profile = get_profile(page.profile_name)
    if model_ref is not None and (profile.device == "cpu" or gpu_visible()):
        page.holder.ensure(profile, model_ref)  # starts loading in the background; returns at once
    st.subheader("3 · Analyse")
    if profile.device == "cpu" and page.holder.state()[0] != "ready":
        st.caption(
            "On a CPU the first analysis takes a few minutes: the engine starts once (about a minute), then each "
            "document takes one to three minutes. The engine then stays loaded for the next ones."
        )
    label = f"Analyse {len(runnable)} document(s)"
    if st.button(label, type="primary", disabled=not runnable or model_ref is None, key="run") and runnable:
        run(page, files, runnable, template)


def results(page: Page) -> None:
    """Step 4: the runs just made (or reused), one at a time, with exports of them all."""
    results = page.state.results
    if not results:
        return
    st.subheader("4 · Results")
    for message in results["errors"]:
        st.error(message)
    for note in results["notes"]:
        st.info(note)
    views: list[RunView] = [v for v in (load_run(page.store, i) for i in results["run_ids"]) if v is not None]
    if not views:
        return
    view = views[0]
    if len(views) > 1:
        labels = [v.label for v in views]
        view = views[labels.index(st.selectbox("Document", labels, key="result_pick"))]
    show_run(page, view, key=f"res{view.run.id}")
    ask_box(page, view, key=f"res{view.run.id}")
    if len(views) > 1:
        one, two, _ = st.columns([1, 1, 4])
        one.download_button("Export all (JSON)", export_json(views), "docanalyst-runs.json", key="all_json")
        two.download_button("Export all (CSV)", export_csv(views), "docanalyst-runs.csv", key="all_csv")


def analyse_tab(page: Page) -> None:
    files = documents(page)
    if not files:
        st.info("Add one or more PDFs to see their token budget and analyse them.")
    elif page.template is None:
        st.warning("The uploaded template file is not valid (see the sidebar): fix or remove it to analyse.")
    else:
        prepare_and_run(page, files, page.template)
    results(page)
