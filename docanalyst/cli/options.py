"""The options the commands share, declared once: an ``Annotated`` alias each, and ``extract_options`` to turn
the reading flags into ``ExtractOptions`` (their CLI names differ from the fields').

A command writes ``ocr: OcrOpt = OCR`` with the default named here, so a default changes in one place.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class Template(StrEnum):
    contract = "contract"
    paper = "paper"
    generic = "generic"


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    wide = "wide"


def _finite(value: float) -> float:
    if value != value:  # NaN passes every range check
        raise typer.BadParameter("not a number")
    return value


# SQLite keys are signed 64-bit: a larger id is a typo, not a run.
RowId = 2**63 - 1

# Defaults of the reading options, one place for all commands.
TEMPLATE = Template.contract
OCR = True
OCR_LANG = "eng"
READ_TIMEOUT = 300.0
MAX_MEMORY = 2048
ALLOW_YARN = True

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
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TemplateOpt = Annotated[Template, typer.Option("--template", "-t", help="What to extract.")]
OcrOpt = Annotated[
    bool, typer.Option("--ocr/--no-ocr", help="Read pages that are only images with Tesseract (when installed).")
]
OcrLangOpt = Annotated[str, typer.Option("--ocr-lang", help="Tesseract language(s), e.g. eng or eng+deu.")]
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
ReportDirOpt = Annotated[
    Path | None,
    typer.Option("--report-dir", help="Where report.md and chart.png go (default: DOCANALYST_HOME/reports)."),
]


def extract_options(
    *,
    model: str | None,
    ocr_lang: str,
    read_timeout: float,
    max_memory: int,
    template: Template | str | None = None,
    **rest: Any,
) -> Any:
    """ExtractOptions from the flags the reading commands share; the rest pass through under their own names."""
    from docanalyst.pipeline import ExtractOptions

    if template is not None:
        rest["template"] = str(template)
    return ExtractOptions(
        model_path=model, ocr_language=ocr_lang, read_timeout_s=read_timeout, read_memory_mb=max_memory, **rest
    )
