"""Everything the web app does that is not Streamlit: uploads, the shared engine, page images, history, exports.

Kept apart from ``app.py`` so it can be tested without a browser, and so ``app.py`` reads as the page layout.
Only the public docanalyst API is used; PyMuPDF is imported here (outside the package) to draw page images.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docanalyst import exporting
from docanalyst.config import Settings
from docanalyst.engines import Engine
from docanalyst.errors import DocanalystError, EngineError
from docanalyst.evaluation import report as eval_report
from docanalyst.profiles import EngineProfile
from docanalyst.store import DocumentRow, EvaluationItemRow, EvaluationRow, FieldRow, RunRow, Store

MAX_UPLOAD_MB = 50
MAX_FILES = 20
UPLOAD_DIR = "uploads"

# Tests replace this with a scripted engine for the fast flow tests; None means the real vLLM engine.
ENGINE_FACTORY: Callable[[EngineProfile, str], Engine] | None = None

FOUND_STATUSES = ("exact", "normalised", "fuzzy", "found", "other_page")  # the last two: databases before 0002
MATCH_WORDS = {"exact": "exact match", "normalised": "match after normalising", "fuzzy": "close match"}


def evidence_label(f: Any) -> str:
    """One plain phrase for a field's evidence: found where the model said, elsewhere, or nowhere."""
    status = f.quote_status
    if status == "no_quote":
        return "– no quote given"
    if status == "not_found":
        return "✗ quote not found in the document"
    if status not in FOUND_STATUSES:
        return status
    how = MATCH_WORDS.get(status, "found")
    score = getattr(f, "score", None)
    if status == "fuzzy" and score is not None:
        how += f" ({score:.0f}%)"
    if status == "other_page" or on_other_page(f):
        return f"⚠ {how} on page {f.found_page}, not the cited page {f.page}"
    if f.page is None:
        return f"⚠ {how} on page {f.found_page} (no page cited)"
    return f"{'≈' if status == 'fuzzy' else '✓'} {how} on the cited page"


def is_found(f: Any) -> bool:
    return f.quote_status in FOUND_STATUSES


def on_other_page(f: Any) -> bool:
    return is_found(f) and f.found_page is not None and f.page is not None and f.found_page != f.page


# ---- uploads -------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_filename(name: str, max_len: int = 100) -> str:
    """A safe file name: the last path part only, ASCII letters, digits, dot, dash, underscore; ends in .pdf."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._-")
    stem = base[:-4] if base.lower().endswith(".pdf") else base
    stem = stem.strip("._-")[: max_len - 4] or "document"
    return f"{stem}.pdf"


@dataclass
class SavedUpload:
    name: str  # the sanitised file name shown to the user
    original_name: str
    path: Path
    sha256: str
    size: int


class UploadError(ValueError):
    pass


def save_upload(home: Path, original_name: str, data: bytes, max_mb: int = MAX_UPLOAD_MB) -> SavedUpload:
    """Save an upload under ``<home>/uploads/<sha256 prefix>/<safe name>`` (same bytes -> same path)."""
    if len(data) > max_mb * 1024 * 1024:
        raise UploadError(f"{original_name}: {len(data) / 1e6:.1f} MB is over the {max_mb} MB limit")
    if not data:
        raise UploadError(f"{original_name}: the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    name = sanitize_filename(original_name)
    folder = Path(home) / UPLOAD_DIR / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists() or path.stat().st_size != len(data):
        tmp = folder / f".{name}.partial"
        tmp.write_bytes(data)
        tmp.replace(path)
    return SavedUpload(name, original_name, path, digest, len(data))


# ---- the shared engine ---------------------------------------------------------------------------
class EngineHolder:
    """One engine per server process, loaded in a background thread; ``run_lock`` serialises its use.

    ``ensure`` starts loading and returns at once, so the page stays responsive; ``wait`` blocks until it is ready.
    Switching profile closes the old engine first (one big engine at a time).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_lock = threading.RLock()  # re-entrant: the run thread may load the engine
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._engine: Engine | None = None
        self._error: DocanalystError | None = None
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.load_s: float | None = None

    def _factory(self) -> Callable[[EngineProfile, str], Engine]:
        if ENGINE_FACTORY is not None:
            return ENGINE_FACTORY
        from docanalyst.engines import VllmEngine

        kv = self.settings.cpu_kv_cache_gib
        return lambda profile, model_ref: VllmEngine(profile, model_ref, cpu_kv_cache_gib=kv)

    def state(self) -> tuple[str, str | None, float]:
        """(idle | loading | ready | error, profile name, seconds since loading started)."""
        with self._lock:
            name = self._key[0] if self._key else None
            if self._key is None:
                return "idle", None, 0.0
            if self._error is not None:
                return "error", name, 0.0
            if self._engine is not None:
                return "ready", name, self.load_s or 0.0
            return "loading", name, time.monotonic() - self._started

    @property
    def error(self) -> DocanalystError | None:
        return self._error

    def ensure(self, profile: EngineProfile, model_ref: str, retry: bool = False) -> None:
        """Start loading this engine unless it is loaded or loading; after a failure, only when ``retry``."""
        key = (profile.name, model_ref)
        with self._lock:
            if self._key == key and (self._error is None or not retry):
                return
            loading = self._thread is not None and self._thread.is_alive()
        if loading and self._thread is not None:
            self._thread.join()  # a different engine is still loading: let it finish before closing it
        with self.run_lock:  # never close an engine while a run uses it
            with self._lock:
                if self._key == key and (self._error is None or not retry):
                    return
                old, self._engine = self._engine, None
                self._key, self._error, self._started, self.load_s = key, None, time.monotonic(), None
            if old is not None:
                old.close()
            thread = threading.Thread(
                target=self._load, args=(profile, model_ref), name="docanalyst-engine", daemon=True
            )
            self._thread = thread
            thread.start()

    def _load(self, profile: EngineProfile, model_ref: str) -> None:
        try:
            engine = self._factory()(profile, model_ref)
        except DocanalystError as exc:
            with self._lock:
                self._error = exc
            return
        except Exception as exc:  # anything else from the engine: one plain line
            with self._lock:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self._error = EngineError(f"could not start the engine for profile '{profile.name}': {first}")
            return
        with self._lock:
            if self._key == (profile.name, model_ref):
                self._engine = engine
                self.load_s = time.monotonic() - self._started
                return
        engine.close()  # superseded while loading

    def wait(self, profile: EngineProfile, model_ref: str, timeout: float | None = None) -> Engine:
        self.ensure(profile, model_ref, retry=True)  # a run asks again after a failed start
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._engine is None:
                raise EngineError(f"the engine for profile '{profile.name}' is still loading")
            return _Shared(self._engine)

    def close(self) -> None:
        with self._lock:
            engine, self._engine, self._key = self._engine, None, None
        if engine is not None:
            engine.close()


class _Shared:
    """The cached engine as the pipeline sees it: ``close()`` does nothing (the server keeps the engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.profile = engine.profile
        self.model_name = engine.model_name

    def generate(self, requests: Any) -> Any:
        return self._engine.generate(requests)

    def close(self) -> None:
        pass


# ---- runs in the background of a script run ------------------------------------------------------
STAGE_WEIGHT = {
    "queued": 0.0,
    "reading": 0.1,
    "starting engine": 0.25,
    "generating": 0.5,
    "re-asking": 0.8,
    "cached": 1.0,
    "error": 1.0,
    "done": 1.0,
}


@dataclass
class RunJob:
    """``Analyzer.extract`` on a worker thread; the script thread polls ``stages`` to draw progress."""

    paths: list[str]
    stages: dict[str, str] = field(default_factory=dict)
    outcomes: list[Any] | None = None
    error: BaseException | None = None
    waiting_for_lock: bool = False
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def fraction(self) -> float:
        if not self.paths:
            return 1.0
        return sum(STAGE_WEIGHT.get(self.stages.get(p, "queued"), 0.5) for p in self.paths) / len(self.paths)

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


def start_job(
    holder: EngineHolder, paths: list[str], work: Callable[[Callable[[str, str], None]], list[Any]]
) -> RunJob:
    """Run ``work(progress)`` (an Analyzer call) on a worker thread, holding the engine's run lock."""
    job = RunJob(paths=list(paths), stages=dict.fromkeys(paths, "queued"))

    def progress(path: str, stage: str) -> None:
        job.stages[path] = stage

    def target() -> None:
        job.waiting_for_lock = not holder.run_lock.acquire(blocking=False)
        if job.waiting_for_lock:
            holder.run_lock.acquire()
            job.waiting_for_lock = False
        try:
            job.outcomes = work(progress)
            for outcome in job.outcomes:
                job.stages[outcome.path] = "done" if outcome.error is None else "error"
        except BaseException as exc:  # shown as one line; never a traceback in the page
            job.error = exc
        finally:
            holder.run_lock.release()

    job.thread = threading.Thread(target=target, name="docanalyst-run", daemon=True)
    job.thread.start()
    return job


def start_run(holder: EngineHolder, analyzer: Any, options: Any, paths: list[str]) -> RunJob:
    return start_job(holder, paths, lambda progress: analyzer.extract(paths, options, progress=progress))


def start_ask(holder: EngineHolder, analyzer: Any, options: Any, path: str, question: str) -> RunJob:
    return start_job(holder, [path], lambda progress: analyzer.ask(path, [question], options, progress=progress))


def engine_factory_for(holder: EngineHolder) -> Callable[[EngineProfile, str], Engine]:
    """What the Analyzer calls: the shared engine (loads it if needed, waits for it)."""
    return lambda profile, model_ref: holder.wait(profile, model_ref)


# ---- page images ---------------------------------------------------------------------------------
def _quote_pieces(quote: str) -> list[str]:
    """The whole quote first, then its lines and sentences (a quote may wrap across lines in the PDF)."""
    whole = " ".join(quote.split())
    pieces = [whole]
    for part in re.split(r"(?<=[.;:])\s+|\n", quote):
        part = " ".join(part.split())
        if len(part) >= 12 and part not in pieces:
            pieces.append(part)
    return pieces


def _content_area(page: Any, border: float = 24.0) -> Any:
    """The page area that has anything on it, with a border; the whole page when it is blank."""
    import pymupdf

    area = pymupdf.Rect()
    for _kind, rect in page.get_bboxlog():
        r = pymupdf.Rect(rect)
        if r.is_valid and not r.is_empty and r.width < page.rect.width * 2:
            area |= r
    if area.is_empty:
        return page.rect
    area = pymupdf.Rect(area.x0 - border, area.y0 - border, area.x1 + border, area.y1 + border) & page.rect
    return area if area.height > 72 else page.rect


def render_page(
    pdf_path: str | Path,
    page_number: int,
    quote: str | None = None,
    password: str | None = None,
    dpi: int = 120,
    crop: bool = True,
) -> tuple[bytes, int]:
    """PNG of one page with every occurrence of the quote highlighted; returns (png bytes, highlights drawn).

    The highlight goes on an in-memory copy: the file on disk is never changed. ``crop`` trims the empty
    margins (the area with text, images and drawings, plus a border), so the words are legible.
    """
    import pymupdf

    try:
        doc = pymupdf.open(str(pdf_path), filetype="pdf")
    except Exception as exc:  # gone, or not a PDF any more: one plain line
        raise DocanalystError("cannot open the PDF to show the page", path=str(pdf_path)) from exc
    try:
        if doc.needs_pass and not doc.authenticate(password or ""):
            raise DocanalystError("encrypted: the password is needed to show the page", path=str(pdf_path))
        if not 1 <= page_number <= doc.page_count:
            raise DocanalystError(f"page {page_number} is outside 1..{doc.page_count}", path=str(pdf_path))
        page = doc.load_page(page_number - 1)
        hits = 0
        if quote and quote.strip():
            pieces = _quote_pieces(quote)
            for piece in pieces:
                quads = page.search_for(piece, quads=True)
                if quads:
                    annot = page.add_highlight_annot(quads)
                    annot.set_colors(stroke=(1.0, 0.85, 0.0))
                    annot.update()
                    hits += len(quads)
                    if piece == pieces[0]:
                        break  # the whole quote is marked: its parts need no second pass
        pixmap = page.get_pixmap(dpi=dpi, annots=True, clip=_content_area(page) if crop else None)
        return pixmap.tobytes("png"), hits
    finally:
        doc.close()


# ---- results -------------------------------------------------------------------------------------
@dataclass
class RunView:
    run: RunRow
    document: DocumentRow
    fields: list[FieldRow]

    @property
    def label(self) -> str:
        when = self.run.created_at.strftime("%Y-%m-%d %H:%M")
        name = Path(self.document.path).name
        return f"run {self.run.id} · {name} · {run_kind(self.run)} · {self.run.profile} · {when}"


def run_kind(run: RunRow) -> str:
    """The template, or for a question the question itself (shortened)."""
    question = getattr(run, "question", None)
    if question:
        return "ask: " + (question if len(question) <= 50 else question[:49] + "…")
    return f"{run.template}@v{run.template_version}"


def load_run(store: Store, run_id: int) -> RunView | None:
    loaded = store.get_run(run_id)
    return RunView(*loaded) if loaded else None


def field_rows(fields: Iterable[FieldRow]) -> list[dict[str, Any]]:
    """The results table: one row per extracted value."""
    rows = []
    for f in fields:
        evidence = evidence_label(f)
        rows.append(
            {
                "field": f.path,
                "value": f.value or "",
                "page": f.page,
                "evidence": evidence,
                "quote": f.quote or "",
            }
        )
    return rows


def evidence_page(f: FieldRow) -> int | None:
    """Which page to show for a field: where the quote really is, else the cited page."""
    if is_found(f) and f.found_page:
        return int(f.found_page)
    return f.page


def run_warnings(view: RunView, document_warnings: Iterable[str] = ()) -> list[str]:
    """Plain warnings for one run: failure, ungrounded values, pages without text, the file gone."""
    out: list[str] = []
    run, fields = view.run, view.fields
    if run.status not in ("ok", "cached"):
        out.append(f"run status '{run.status}': {run.error or 'no result'}")
    valued = [f for f in fields if f.value]
    not_found = [f for f in fields if f.quote_status == "not_found"]
    other = [f for f in fields if on_other_page(f)]
    unquoted = [f for f in valued if f.quote_status == "no_quote"]
    if not_found:
        names = ", ".join(f.path for f in not_found[:8]) + (" …" if len(not_found) > 8 else "")
        out.append(
            f"{len(not_found)} of {len(fields)} quote(s) were not found in the document: treat those values as "
            f"unverified ({names})"
        )
    if other:
        out.append(f"{len(other)} quote(s) are on a different page than the model cited")
    if unquoted:
        out.append(f"{len(unquoted)} value(s) have no supporting quote")
    if fields and not valued:
        out.append("the model returned no values for this document")
    out.extend(str(w) for w in document_warnings)
    if not Path(view.document.path).exists():
        out.append("the original PDF is no longer on this server: page images cannot be shown")
    return out


def run_record(view: RunView) -> dict[str, Any]:
    return exporting.run_record(view.run, view.document, view.fields)


def export_json(views: list[RunView]) -> str:
    records = [run_record(v) for v in views]
    return json.dumps(records[0] if len(records) == 1 else records, indent=2, ensure_ascii=False)


def export_csv(views: list[RunView]) -> str:
    """One row per extracted field (a run without fields still gets one row, with its status)."""
    return exporting.to_field_csv([run_record(v) for v in views])


# ---- history -------------------------------------------------------------------------------------
def history_rows(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    from sqlmodel import Session, col, func, select

    runs = store.list_runs(limit)
    counts: dict[int, tuple[int, int]] = {}
    ids = [r.id for r, _ in runs if r.id is not None]
    if ids:
        with Session(store.engine) as session:
            stmt = (
                select(col(FieldRow.run_id), func.count(), func.sum(col(FieldRow.quote_found)))
                .where(col(FieldRow.run_id).in_(ids), col(FieldRow.quote_status) != "no_quote")
                .group_by(col(FieldRow.run_id))
            )
            for run_id, n_quotes, n_found in session.exec(stmt):
                counts[int(run_id)] = (int(n_quotes or 0), int(n_found or 0))
    rows = []
    for run, doc in runs:
        total, found = counts.get(run.id or -1, (0, 0))
        rows.append(
            {
                "run": run.id,
                "when (UTC)": run.created_at.strftime("%Y-%m-%d %H:%M"),
                "document": Path(doc.path).name,
                "pages": doc.pages,
                "template": run_kind(run),
                "profile": run.profile,
                "model": run.model,
                "status": run.status,
                "quotes found": f"{found} of {total}",
            }
        )
    return rows


def delete_run(store: Store, run_id: int) -> bool:
    """Delete a run and its fields in one transaction (and its document row when no run is left). An evaluation
    that scored this run keeps its scores; its item just no longer points at a run."""
    from sqlmodel import Session, col, delete, select, update

    with Session(store.engine) as session, session.begin():
        run = session.get(RunRow, run_id)
        if run is None:
            return False
        sha = run.document_sha256
        session.execute(delete(FieldRow).where(col(FieldRow.run_id) == run_id))
        session.execute(update(EvaluationItemRow).where(col(EvaluationItemRow.run_id) == run_id).values(run_id=None))
        session.delete(run)
        session.flush()
        if session.exec(select(RunRow.id).where(RunRow.document_sha256 == sha)).first() is None:
            doc = session.get(DocumentRow, sha)
            if doc is not None:
                session.delete(doc)
    return True


def compare_rows(a: RunView, b: RunView) -> list[dict[str, Any]]:
    """Field by field, side by side; ``same`` says whether the two values agree."""
    by_a = {f.path: f for f in a.fields}
    by_b = {f.path: f for f in b.fields}
    order = list(by_a) + [p for p in by_b if p not in by_a]
    rows = []
    for path in order:
        fa, fb = by_a.get(path), by_b.get(path)
        va, vb = (fa.value if fa else None), (fb.value if fb else None)
        rows.append(
            {
                "field": path,
                f"run {a.run.id} value": va or "",
                f"run {a.run.id} page": fa.page if fa else None,
                f"run {a.run.id} evidence": evidence_label(fa) if fa else "",
                f"run {b.run.id} value": vb or "",
                f"run {b.run.id} page": fb.page if fb else None,
                f"run {b.run.id} evidence": evidence_label(fb) if fb else "",
                "same": "=" if (va or "") == (vb or "") else "≠",
            }
        )
    return rows


# ---- evaluations (`docanalyst eval`) -------------------------------------------------------------------


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def evaluation_rows(evaluations: Iterable[EvaluationRow]) -> list[dict[str, Any]]:
    rows = []
    for ev in evaluations:
        totals = ev.summary["totals"]
        rows.append(
            {
                "evaluation": ev.id,
                "when (UTC)": ev.created_at.strftime("%Y-%m-%d %H:%M"),
                "dataset": ev.dataset,
                "template": f"{ev.template} v{ev.template_version}",
                "profile": ev.profile,
                "model": ev.model,
                "scored": f"{ev.scored} of {ev.documents}",
                "precision %": _pct(totals["precision"]),
                "recall %": _pct(totals["recall"]),
                "F1 %": _pct(totals["f1"]),
            }
        )
    return rows


def evaluation_field_rows(evaluation: EvaluationRow) -> list[dict[str, Any]]:
    """Per field: the counts and precision / recall / F1 in percent (None where nothing was claimed/labelled)."""
    rows = []
    for name, c in [*evaluation.summary["fields"].items(), ("(all fields)", evaluation.summary["totals"])]:
        rows.append(
            {
                "field": name,
                "right": c["right"],
                "wrong": c["wrong"],
                "missing": c["missing"],
                "spurious": c["spurious"],
                "rightly absent": c["absent_ok"],
                "precision %": _pct(c["precision"]),
                "recall %": _pct(c["recall"]),
                "F1 %": _pct(c["f1"]),
            }
        )
    return rows


def evaluation_document_rows(items: Iterable[EvaluationItemRow]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        scores = json.loads(item.scores_json)
        rows.append(
            {
                "document": item.name,
                "status": item.status,
                "run": item.run_id,
                "pages": item.pages,
                "tokens in": item.prompt_tokens,
                "right": sum(s["right"] for s in scores) if scores else None,
                "of labels": sum(s["right"] + s["wrong"] + s["missing"] for s in scores) if scores else None,
                "quotes found": f"{item.quotes_found} / {item.quotes_total}" if item.quotes_total is not None else "",
                "detail": (item.error or "").split(": ", 1)[-1] if item.status in ("skipped", "unreadable") else "",
            }
        )
    return rows


def evaluation_chart_data(evaluations: list[EvaluationRow]) -> dict[str, dict[str, float]]:
    """F1 per field (0-1), one series per evaluation: what ``st.bar_chart`` draws."""
    fields = eval_report.field_names(evaluations)
    return {
        f"#{ev.id} {ev.profile} · {ev.template} v{ev.template_version}": {
            name: (ev.summary["fields"].get(name) or {}).get("f1") or 0.0 for name in fields
        }
        for ev in evaluations
    }


def evaluation_markdown(evaluation: EvaluationRow, items: list[EvaluationItemRow]) -> str:
    return eval_report.markdown(evaluation, items, None)
