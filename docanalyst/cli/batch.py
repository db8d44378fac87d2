"""``batch``: a folder of PDFs through ``run_batch`` with a live progress bar, a summary table and an exit code
that says whether everything was done (0), something was not (1) or nothing could run (2).

The bar's bookkeeping is a small class (``BatchProgress``) fed by run_batch's events, so the command itself is
only options, the call and the summary.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from docanalyst.cli.common import emit_json, engine_settings, err, open_analyzer, path_text, safe_text
from docanalyst.cli.edge import stdout_to_stderr
from docanalyst.cli.options import (
    ALLOW_YARN,
    MAX_MEMORY,
    OCR,
    OCR_LANG,
    READ_TIMEOUT,
    TEMPLATE,
    AllowYarnOpt,
    ApiKeyOpt,
    DbOpt,
    EngineArgOpt,
    EngineOpt,
    EvidenceOpt,
    FieldGroupsOpt,
    MaxMemoryOpt,
    MaxOutputOpt,
    ModelOpt,
    OcrLangOpt,
    OcrOpt,
    PasswordOpt,
    ProfileOpt,
    RayOpt,
    ReadTimeoutOpt,
    ReplicasOpt,
    StrictOpt,
    TablesOpt,
    TemplateOpt,
    TensorParallelOpt,
    extract_options,
)
from docanalyst.display import printable, show_path
from docanalyst.errors import ConfigError, DocanalystError
from docanalyst.statuses import FLAGGED_STATUSES, BatchEvent, RunStatus

# What the counts line shows, in order: a finished document counts under its status, any other under failed.
_SHOWN = {
    RunStatus.OK: "ok",
    RunStatus.CACHED: "stored before",
    RunStatus.PARTIAL: "partial",
    RunStatus.FAILED: "failed",
    RunStatus.SKIPPED: "skipped",
}


class BatchProgress:
    """The progress bar of one batch: counts per status and pages/tokens per second, from run_batch's events."""

    def __init__(self, total: int, jsonl: bool) -> None:
        self.jsonl = jsonl
        self.counts: Counter[RunStatus] = Counter()
        self.pages = self.tokens = 0
        self.started = time.perf_counter()
        self.engine_started = False
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err(),
            transient=False,
        )
        self.task = self.bar.add_task("reading", total=total, counts="", rate="")

    def on_event(self, kind: BatchEvent, outcome: Any, info: dict[str, Any]) -> None:
        """run_batch's ``Event`` callback (docanalyst.batch.Event)."""
        if kind == BatchEvent.READ:
            self.pages += info["pages"]
            self.tokens += info["tokens"]
        elif kind == BatchEvent.ENGINE:
            self.engine_started = True
            starting = info.get("replicas") or "engine"  # with --ray: "2 engine replica(s), 1 GPU each"
            self.bar.update(self.task, description=f"starting {starting} ({info['documents']} to analyse)")
        elif kind == BatchEvent.DONE:
            self.counts[outcome.status if outcome.status in _SHOWN else RunStatus.FAILED] += 1
            if self.jsonl:
                emit_json(outcome.as_json())
            elapsed = max(time.perf_counter() - self.started, 1e-6)
            self.bar.update(
                self.task,
                advance=1,
                description="analysing" if self.engine_started else "reading",
                counts=" · ".join(f"{label} {self.counts[status]}" for status, label in _SHOWN.items()),
                rate=f"{self.pages / elapsed:.1f} pages/s {self.tokens / elapsed:,.0f} tok/s",
            )

    def counts_line(self) -> str:
        c = self.counts
        return (
            f"done {c[RunStatus.OK]}, stored before {c[RunStatus.CACHED]}, partial {c[RunStatus.PARTIAL]}, "
            f"failed {c[RunStatus.FAILED]}, skipped {c[RunStatus.SKIPPED]}"
        )

    def exit_code(self) -> int:
        """2 when nothing could run, 1 when something failed, was partial or skipped, else 0."""
        c = self.counts
        if c[RunStatus.OK] + c[RunStatus.CACHED] + c[RunStatus.PARTIAL] == 0:
            return 2
        return 1 if c[RunStatus.FAILED] or c[RunStatus.SKIPPED] or c[RunStatus.PARTIAL] else 0


def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of PDFs.")],
    glob: Annotated[str, typer.Option("--glob", help="Which files, as a glob pattern.")] = "*.pdf",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders.")] = False,
    template: TemplateOpt = TEMPLATE,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = ALLOW_YARN,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON line per document on stdout.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Reader processes.")] = 2,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip documents already stored for this question.")
    ] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per engine call.")] = 16,
    strict: StrictOpt = False,
    max_output_tokens: MaxOutputOpt = None,
    field_groups: FieldGroupsOpt = None,
    evidence: EvidenceOpt = None,
    ocr: OcrOpt = OCR,
    ocr_lang: OcrLangOpt = OCR_LANG,
    tables: TablesOpt = True,
    read_timeout: ReadTimeoutOpt = READ_TIMEOUT,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    engine: EngineOpt = None,
    api_key: ApiKeyOpt = None,
    engine_arg: EngineArgOpt = None,
    tensor_parallel_size: TensorParallelOpt = None,
    db: DbOpt = None,
    ray: RayOpt = None,
    replicas: ReplicasOpt = None,
) -> None:
    """Process a folder: parallel reading, many documents per engine call, resumable after any stop.

    With --ray the same batch runs as a Ray Data job: files are read in Ray tasks and answered by engine
    replicas on the cluster's nodes; this process stores every result (README: "A Ray cluster").

    Exit code: 0 all done, 1 some failed, were partial (fields missing) or were skipped, 2 nothing could run.
    """

    files = find_pdfs(folder, glob, recursive)
    options = extract_options(
        template=template, profile=profile, model=model, password=password, allow_yarn=allow_yarn,
        force=not resume, reuse_statuses=FLAGGED_STATUSES, strict=strict, field_groups=field_groups,
        max_output_tokens=max_output_tokens,
        evidence=evidence and evidence.value,
        ocr=ocr, ocr_lang=ocr_lang, tables=tables, read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    config = engine_settings(db, options, engine, api_key, engine_arg, tensor_parallel_size)
    progress = BatchProgress(len(files), jsonl)
    with open_analyzer(config) as analyzer, stdout_to_stderr(stream_results=jsonl), progress.bar:
        outcomes = _run(analyzer, files, options, ray, replicas, workers, read_timeout, batch_size, progress)
    err().print(summary_table(folder, len(files), outcomes, time.perf_counter() - progress.started))
    err().print(progress.counts_line())
    raise typer.Exit(progress.exit_code())


def _run(analyzer: Any, files: list[Path], options: Any, ray: str | None, replicas: int | None, workers: int,
         read_timeout: float, batch_size: int, progress: BatchProgress) -> list[Any]:  # fmt: skip
    """On a Ray cluster (``--ray``) or in this process."""
    if ray is not None:
        from docanalyst.ray_batch import run_batch_ray

        return run_batch_ray(analyzer, files, options, address=ray, replicas=replicas, batch_size=batch_size,
                             on_event=progress.on_event)  # fmt: skip
    from docanalyst.batch import run_batch

    return run_batch(
        analyzer, files, options, workers=workers,
        # a backstop behind the reader's own limit (which gives the clearer message): tokenising comes after
        timeout_s=read_timeout + 60, batch_size=batch_size, on_event=progress.on_event,
    )  # fmt: skip


def summary_table(folder: Path, total: int, outcomes: list[Any], seconds: float) -> Table:
    """One row per document: pages, status (coloured), run id and the error without the repeated file name."""
    table = Table(title=f"{path_text(folder)}: {total} file(s) in {seconds:.1f} s")
    for column in ("document", "pages", "status", "run", "detail"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        detail = str(o.error).removeprefix(f"{show_path(o.path)}: ") if o.error else ""
        color = "green" if o.ok else "yellow" if o.status in (RunStatus.SKIPPED, RunStatus.PARTIAL) else "red"
        table.add_row(
            path_text(Path(o.path).name),
            str(o.document.page_count) if o.document else "",
            f"[{color}]{o.status}[/{color}]",
            str(o.run_id or ""),
            safe_text(detail),
        )
    return table


def find_pdfs(folder: Path, glob: str, recursive: bool) -> list[Path]:
    """``batch.find_pdfs`` with the pattern checked first (pathlib refuses absolute and empty patterns with a
    NotImplementedError / ValueError that says nothing about the option), and none found is an error."""
    from docanalyst.batch import find_pdfs as find

    if not glob or Path(glob).is_absolute():
        raise ConfigError(
            f"--glob {printable(repr(glob))}: give a pattern inside the folder, such as '*.pdf' or 'a*/*.pdf'"
        )
    try:
        files = find(folder, glob, recursive)
    except (NotImplementedError, ValueError) as exc:
        raise ConfigError(f"--glob {printable(repr(glob))}: {exc}") from exc
    if not files:
        raise DocanalystError(f"no files match {glob!r}", path=folder)
    return files
