"""``extract``, ``ask`` and ``tokens``: the commands that read documents one by one and print each result.

Each is a thin layer of options: the flags become ExtractOptions (``extract_options``), the Analyzer comes from
the process's engine pool (``open_analyzer``), and what is printed is tables.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from docanalyst.cli.common import (
    emit_json,
    engine_settings,
    open_analyzer,
    out,
    path_text,
    progress_line,
    safe_text,
    settings,
)
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
    ForceOpt,
    JsonOpt,
    MaxMemoryOpt,
    MaxOutputOpt,
    MinConfidenceOpt,
    ModelOpt,
    OcrLangOpt,
    OcrOpt,
    PasswordOpt,
    ProfileOpt,
    ReadTimeoutOpt,
    StrictOpt,
    TablesOpt,
    TemplateOpt,
    TemplatesOpt,
    TensorParallelOpt,
    extract_options,
)
from docanalyst.cli.tables import report
from docanalyst.errors import DocanalystError
from docanalyst.statuses import Fit

RepetitionGuardOpt = Annotated[
    bool,
    typer.Option(
        "--repetition-guard/--no-repetition-guard",
        help="End a loop inside a string or a list as soon as it repeats (no effect on answers without one).",
    ),
]


def extract(
    files: Annotated[list[Path], typer.Argument(help="PDF files to analyse (each is sent whole, in one pass).")],
    template: TemplateOpt = TEMPLATE,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = ALLOW_YARN,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
    strict: StrictOpt = False,
    ocr: OcrOpt = OCR,
    ocr_lang: OcrLangOpt = OCR_LANG,
    tables: TablesOpt = True,
    read_timeout: ReadTimeoutOpt = READ_TIMEOUT,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    max_output_tokens: MaxOutputOpt = None,
    field_groups: FieldGroupsOpt = None,
    evidence: EvidenceOpt = None,
    repetition_guard: RepetitionGuardOpt = True,
    min_confidence: MinConfidenceOpt = None,
    engine: EngineOpt = None,
    api_key: ApiKeyOpt = None,
    engine_arg: EngineArgOpt = None,
    tensor_parallel_size: TensorParallelOpt = None,
    db: DbOpt = None,
) -> None:
    """Extract validated, page-cited fields from whole PDFs and store the runs."""
    options = extract_options(
        template=template, profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force,
        strict=strict, ocr=ocr, ocr_lang=ocr_lang, tables=tables, read_timeout=read_timeout, max_memory=max_memory,
        max_output_tokens=max_output_tokens, repetition_guard=repetition_guard, field_groups=field_groups,
        evidence=evidence and evidence.value,
    )  # fmt: skip
    config = engine_settings(db, options, engine, api_key, engine_arg, tensor_parallel_size)
    with open_analyzer(config) as analyzer, stdout_to_stderr(), progress_line() as say:
        outcomes = analyzer.extract(files, options, progress=say, early_start=True)
    raise typer.Exit(report(outcomes, as_json, min_confidence))


def ask(
    file: Annotated[Path, typer.Argument(help="A PDF file.")],
    question: Annotated[str | None, typer.Argument(help="A question about the document.")] = None,
    questions: Annotated[
        list[str] | None, typer.Option("--question", "-q", help="More questions (repeatable).")
    ] = None,
    templates: TemplatesOpt = None,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    allow_yarn: AllowYarnOpt = ALLOW_YARN,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
    strict: StrictOpt = False,
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
) -> None:
    """Answer questions about one document with verified page citations.

    All questions (and --template extractions) share the document prefix: after the first request the engine
    serves the document from its prefix cache (see cached tokens in the output).
    """
    asked = [q for q in [question, *(questions or [])] if q and q.strip()]
    extra = list(templates or [])
    if not asked and not extra:
        raise DocanalystError('nothing to ask: give a question (docanalyst ask FILE "question") or --template')
    options = extract_options(
        profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force, strict=strict,
        ocr=ocr, ocr_lang=ocr_lang, tables=tables, read_timeout=read_timeout, max_memory=max_memory,
        evidence=evidence and evidence.value,
    )  # fmt: skip
    config = engine_settings(db, options, engine, api_key, engine_arg, tensor_parallel_size)
    with open_analyzer(config) as analyzer, stdout_to_stderr(), progress_line() as say:
        outcomes = analyzer.ask(file, asked, options, extra, progress=say, early_start=True)
    raise typer.Exit(report(outcomes, as_json))


def tokens(
    file: Annotated[Path, typer.Argument(help="A PDF file.")],
    template: TemplateOpt = TEMPLATE,
    profile: ProfileOpt = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    ocr: OcrOpt = OCR,
    ocr_lang: OcrLangOpt = OCR_LANG,
    tables: TablesOpt = True,
    read_timeout: ReadTimeoutOpt = READ_TIMEOUT,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    as_json: JsonOpt = False,
) -> None:
    """Token budget of a PDF against a profile's window (no engine is started)."""
    from docanalyst.pipeline import Analyzer

    options = extract_options(
        template=template, profile=profile, model=model, password=password, ocr=ocr, ocr_lang=ocr_lang, tables=tables,
        read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    analyzer = Analyzer(settings())
    try:
        document, budget, verdict = analyzer.budget(file, options)
    finally:
        analyzer.close()
    if as_json:
        emit_json(
            {
                "path": str(file),
                "pages": document.page_count,
                "chars": document.char_count,
                "pages_without_text": document.pages_without_text,
                "warnings": list(document.warnings),
                **budget.as_dict(),
                "verdict": verdict,
            }
        )
        return
    console = out()
    kind = "exact" if budget.exact else "estimate"
    console.print(f"[bold]{path_text(file)}[/bold]: {document.page_count} pages, {document.char_count:,} characters")
    for warning in document.warnings:
        console.print(f"  [yellow]warning:[/yellow] {safe_text(warning)}", highlight=False)
    console.print(f"  {budget.document_tokens:,} tokens ({kind}, {budget.counter}) in the document")
    console.print(f"  prompt {budget.prompt_tokens:,} = document + {budget.overhead_tokens:,} of instructions")
    console.print(f"  window {budget.window:,} ({budget.profile}), reserve {budget.reserve_tokens:,} for the answer")
    color = {Fit.FITS: "green", Fit.NEEDS_LONG: "yellow"}.get(verdict.kind, "red")
    console.print(f"  verdict: [{color}]{verdict}[/{color}] (needs {budget.needed:,} of {budget.window:,})")
