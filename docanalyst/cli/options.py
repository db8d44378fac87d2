"""The options the commands share, declared once: an ``Annotated`` alias each, and ``extract_options`` to turn
the reading flags into ``ExtractOptions`` (their CLI names differ from the fields').

A command writes ``ocr: OcrOpt = OCR`` with the default named here, so a default changes in one place.

``--template`` is a plain string: a built-in name, a name from ``DOCANALYST_HOME/templates`` or a path to a
template file. It is checked while the command line is parsed (``check_template``), so a bad file ends in one
line naming the file, the field and the problem before anything is read; ``TemplateHelpCommand`` lists the
templates actually installed when ``--help`` is shown (not at import: a broken user file must not break every
command).
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperOption

from docanalyst.cli.common import settings

BUILT_IN_TEMPLATES = ("contract", "paper", "generic")


class ExportFormat(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    wide = "wide"


def _finite(value: float) -> float:
    if value != value:  # NaN passes every range check
        raise typer.BadParameter("not a number")
    return value


def _confidence(value: float | None) -> float | None:
    """``--min-confidence``: a probability. typer's ``min``/``max`` let NaN through, so it is checked here."""
    if value is not None and (math.isnan(value) or not 0.0 <= value <= 1.0):
        raise typer.BadParameter(f"{value} is not a confidence between 0 and 1")
    return value


def check_template(value: Any) -> Any:
    """Resolve every ``--template`` given (a name or a path) now: an unknown name or a bad file raises the
    registry's TemplateError, which the edge prints as one ``error:`` line with exit 2. The value stays the
    string the user gave: ExtractOptions carries it and the pipeline resolves it the same way."""
    if value is None:
        return value
    from docanalyst.templates import get_template

    home = settings().home
    for ref in value if isinstance(value, list | tuple) else [value]:
        get_template(str(ref), home)
    return value


def template_choices() -> str:
    """The templates a user can name right now, for --help: the built-ins and DOCANALYST_HOME/templates."""
    from docanalyst.errors import DocanalystError

    try:
        from docanalyst.templates import list_templates

        names = [t.name for t in list_templates(settings().home)]
    except (DocanalystError, ImportError):
        names = list(BUILT_IN_TEMPLATES)
    return ", ".join(names)


class TemplateHelpCommand(TyperCommand):
    """A command whose ``--template`` help names the installed templates, read when the help is shown."""

    _base_help: ClassVar[dict[int, str]] = {}  # the help as declared, before the list was added

    def format_help(self, ctx: Any, formatter: Any) -> None:
        choices = template_choices()
        for param in self.params:
            if isinstance(param, TyperOption) and "--template" in param.opts:
                base = self._base_help.setdefault(id(param), param.help or "")
                param.help = f"{base} Installed: {choices}."
        super().format_help(ctx, formatter)


# SQLite keys are signed 64-bit: a larger id is a typo, not a run.
RowId = 2**63 - 1

# Defaults of the reading options, one place for all commands.
TEMPLATE = "contract"
OCR = True
OCR_LANG = "eng"
READ_TIMEOUT = 300.0
MAX_MEMORY = 2048
ALLOW_YARN = True

_TEMPLATE_HELP = "A template name, or a .yaml/.json template file (see `docanalyst templates list`)."

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Engine profile (see `docanalyst models list`). Default: embedded without a GPU, qwen3-next with one.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="A local Hugging Face model folder to use instead; with a server (--engine), the name it serves.",
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="URL|local",
        help="Which engine answers: a server's URL (`docanalyst serve`, a `vllm serve`), or local for an engine in "
        "this process. Default: DOCANALYST_ENGINE, else a `docanalyst serve` at http://127.0.0.1:8008 that serves "
        "the model, else in this process.",
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", help="The server's key (sent as a Bearer token). Default: DOCANALYST_API_KEY."),
]
EngineArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--engine-arg",
        metavar="KEY=VALUE",
        help="An engine setting over the profile's, for the engine this command starts (a vllm.LLM argument; "
        "repeatable; the value is read as JSON when it is JSON), e.g. load_format=dummy. Recorded with each run; "
        "one that changes what the model computes also marks the run's model name. Adds to DOCANALYST_ENGINE_ARGS.",
    ),
]
TensorParallelOpt = Annotated[
    int | None,
    typer.Option("--tensor-parallel-size", min=1, max=1024, help="GPUs the engine spreads over (an engine argument)."),
]
PasswordOpt = Annotated[str | None, typer.Option("--password", help="Password of an encrypted PDF.")]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run the batch on Ray: --ray alone starts a local Ray for this run; --ray auto joins the cluster in "
        "RAY_ADDRESS; --ray HOST:PORT joins that one. Needs the ray extra.",
    ),
]
ReplicasOpt = Annotated[
    int | None,
    typer.Option(
        "--replicas", min=1, help="With --ray: engine replicas (default: GPUs / tensor-parallel size; 1 on a CPU)."
    ),
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: sqlite in DOCANALYST_HOME).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TemplateOpt = Annotated[
    str,
    typer.Option(
        "--template", "-t", metavar="NAME|FILE", callback=check_template, help=f"What to extract. {_TEMPLATE_HELP}"
    ),
]
OptionalTemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-t",
        metavar="NAME|FILE",
        callback=check_template,
        help=f"Template for a folder dataset (default: contract). {_TEMPLATE_HELP}",
    ),
]
TemplatesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--template",
        "-t",
        metavar="NAME|FILE",
        callback=check_template,
        help=f"Also run these extractions (repeatable). {_TEMPLATE_HELP}",
    ),
]
MinConfidenceOpt = Annotated[
    float | None,
    typer.Option(
        "--min-confidence",
        metavar="0..1",
        callback=_confidence,
        help="Hide values whose confidence is below this (0 to 1; a value without a confidence is kept).",
    ),
]
OcrOpt = Annotated[
    bool, typer.Option("--ocr/--no-ocr", help="Read pages that are only images with Tesseract (when installed).")
]
OcrLangOpt = Annotated[str, typer.Option("--ocr-lang", help="Tesseract language(s), e.g. eng or eng+deu.")]
TablesOpt = Annotated[
    bool,
    typer.Option(
        "--tables/--no-tables",
        help="Detect ruled tables and give them to the model as Markdown tables (off: plain text, read faster).",
    ),
]
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
FieldGroupsOpt = Annotated[
    int | None,
    typer.Option(
        "--field-groups",
        min=1,
        max=40,
        help="Decode the template's fields as N requests side by side on the document's cached prefix (1: one "
        "request; N: N groups balanced by their answer's length). Default: the profile's (the template's "
        "declared groups on a GPU, one request on a CPU).",
    ),
]


class Evidence(StrEnum):
    quotes = "quotes"
    refs = "refs"


EvidenceOpt = Annotated[
    Evidence | None,
    typer.Option(
        "--evidence",
        help="How values cite the document: quotes copied from it, or refs to its numbered sentences (fewer "
        "output tokens; the quote is filled in from the document). Default: the profile's.",
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
    template: str | None = None,
    **rest: Any,
) -> Any:
    """ExtractOptions from the flags the reading commands share; the rest pass through under their own names."""
    from docanalyst.pipeline import ExtractOptions

    if template is not None:
        rest["template"] = str(template)
    return ExtractOptions(
        model_path=model, ocr_language=ocr_lang, read_timeout_s=read_timeout, read_memory_mb=max_memory, **rest
    )
