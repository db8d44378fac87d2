"""``eval run | list | show | compare``: measure extraction quality on labelled documents and read the stored
evaluations back.

``eval`` is a sub-app whose default command is ``run``: ``docanalyst eval --dataset cuad`` (the form every
script and the docs used before the sub-app) is ``eval run --dataset cuad``. The old top-level names
``eval-list``, ``eval-show`` and ``eval-compare`` stay as hidden aliases of the same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from docanalyst.cli.common import command_line, engine_settings, err, open_analyzer, out, settings
from docanalyst.cli.edge import stdout_to_stderr
from docanalyst.cli.options import (
    ALLOW_YARN,
    MAX_MEMORY,
    OCR,
    OCR_LANG,
    READ_TIMEOUT,
    AllowYarnOpt,
    ApiKeyOpt,
    DbOpt,
    EngineArgOpt,
    EngineOpt,
    ForceOpt,
    JsonOpt,
    MaxMemoryOpt,
    ModelOpt,
    OcrLangOpt,
    OcrOpt,
    OptionalTemplateOpt,
    PasswordOpt,
    ProfileOpt,
    ReadTimeoutOpt,
    ReportDirOpt,
    RowId,
    TablesOpt,
    TemplateHelpCommand,
    TensorParallelOpt,
    extract_options,
)

if TYPE_CHECKING:
    from docanalyst.config import Settings
    from docanalyst.evaluation.datasets import Dataset


class RunByDefault(TyperGroup):
    """``eval`` followed by an option (``eval --dataset cuad``) runs ``eval run``: the command line that
    existed before ``eval`` had sub-commands keeps working, unchanged."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=RunByDefault,
    no_args_is_help=True,
    help="Measure extraction quality on labelled documents, and read stored evaluations back. "
    "`eval --dataset …` is short for `eval run --dataset …`; eval-list, eval-show and eval-compare, the "
    "names from before, still work.",
)


DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Only read and measure: which documents fit the window (no engine).")
]


@eval_app.command("run", cls=TemplateHelpCommand)
def run(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            "-d",
            help="cuad, papers (from the shared corpus, see DOCANALYST_CORPUS), corrections (the reviewed runs in "
            "the database: `docanalyst review`, the web app), or a path: a CUAD folder or master_clauses.csv, a "
            "papers ground-truth JSON, or a folder of PDFs with labels.csv/labels.jsonl.",
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
    template: OptionalTemplateOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    report_dir: ReportDirOpt = None,
    allow_yarn: AllowYarnOpt = ALLOW_YARN,
    ocr: OcrOpt = OCR,
    ocr_lang: OcrLangOpt = OCR_LANG,
    tables: TablesOpt = True,
    read_timeout: ReadTimeoutOpt = READ_TIMEOUT,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    as_json: JsonOpt = False,
    engine: EngineOpt = None,
    api_key: ApiKeyOpt = None,
    engine_arg: EngineArgOpt = None,
    tensor_parallel_size: TensorParallelOpt = None,
    db: DbOpt = None,
) -> None:
    """Evaluate a labelled dataset: per-field precision, recall, F1, precision at 80 % recall and AUPR.

    Also grounding, tokens and time; a Markdown report and a chart; the evaluation is stored (`eval compare`).
    Documents over the profile's window are counted as skipped; a document without a valid answer counts
    its labels as missing. Exit code: 0 when at least one document was scored, 2 when none could be.
    """
    from docanalyst.evaluation import views
    from docanalyst.evaluation.runner import plan

    options = extract_options(
        profile=profile, model=model, password=password, allow_yarn=allow_yarn, force=force, ocr=ocr,
        ocr_lang=ocr_lang, tables=tables, read_timeout=read_timeout, max_memory=max_memory,
    )  # fmt: skip
    config = engine_settings(db, options, engine, api_key, engine_arg, tensor_parallel_size)
    data = _dataset(dataset, config, labels, template).limited(limit)
    if dry_run:
        with open_analyzer(config) as analyzer:
            views.print_plan(out(), data, plan(analyzer, data, options), as_json)
        return
    raise typer.Exit(_evaluate(config, data, options, report_dir, as_json))


def _dataset(dataset: str, config: Settings, labels: Path | None, template: str | None) -> Any:
    """``corrections``: the reviewed runs of this database (a team's reviews as its labels); else a named or
    path dataset (evaluation/datasets.resolve)."""
    if dataset == "corrections":
        from docanalyst.reviewing import corrections_dataset
        from docanalyst.store import Store

        return corrections_dataset(Store(config.db_url), template)
    from docanalyst.evaluation.datasets import resolve

    return resolve(dataset, config.corpus_dir, labels, template)


def _evaluate(config: Settings, data: Dataset, options: Any, report_dir: Path | None, as_json: bool) -> int:
    """Run, store, write the report, print; exit code 0 when a document was scored, 2 when none could be."""
    from docanalyst.evaluation import views

    with open_analyzer(config) as analyzer:
        with stdout_to_stderr():
            result = views.run(analyzer, data, options, err(), command_line())
        folder = report_dir or config.home / "reports" / f"eval-{result.evaluation_id}-{data.name}"
        report = views.write_report(analyzer, result, folder)
    views.print_result(out(), err(), result, report, as_json)
    return 2 if result.summary()["status"]["scored"] == 0 else 0


@eval_app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=RowId, help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List stored evaluations."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    views.print_list(out(), Store(settings(db).db_url).list_evaluations(limit), as_json)


@eval_app.command("show")
def show(
    evaluation_id: Annotated[int, typer.Argument(min=1, max=RowId, help="Evaluation id (see `docanalyst eval list`).")],
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write its report.md and chart.png again, here.")
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show one stored evaluation (per-field figures); optionally write its report again."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    views.show(Store(settings(db).db_url), evaluation_id, out(), report_dir, as_json)


@eval_app.command("compare")
def compare(
    ids: Annotated[list[int], typer.Argument(min=1, max=RowId, help="Evaluation ids (see `docanalyst eval list`).")],
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Also write compare.md and compare.png here.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Per-field F1, precision and recall of several evaluations side by side (two models, templates, profiles)."""
    from docanalyst.evaluation import views
    from docanalyst.store import Store

    store = Store(settings(db).db_url)
    views.print_compare(out(), views.load_evaluations(store, ids), report_dir)
