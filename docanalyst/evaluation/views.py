"""What ``docanalyst eval``, ``eval-list`` and ``eval-compare`` print: rich tables for people, JSON for scripts.
Kept out of cli.py so the command module stays a thin layer of options."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from docanalyst.display import one_line, printable, show_path
from docanalyst.errors import DocanalystError
from docanalyst.evaluation import report as reports
from docanalyst.evaluation.datasets import Dataset
from docanalyst.evaluation.report import pct, ranked_cells
from docanalyst.evaluation.runner import EvaluationResult, PlanRow, evaluate
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.store import EvaluationItemRow, EvaluationRow, Store


def _json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(
    analyzer: Analyzer, dataset: Dataset, options: ExtractOptions, errors: Console, command: str
) -> EvaluationResult:
    """The evaluation with a progress bar on stderr (reading in parallel, then the engine)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=errors,
    )
    task = progress.add_task("reading", total=len(dataset.cases), last="")

    def on_event(kind: str, outcome: Any, info: dict[str, Any]) -> None:
        if kind == "engine":
            progress.update(task, description=f"analysing ({info['documents']} in the window)")
        elif kind == "done" and outcome is not None:
            progress.update(task, advance=1, last=f"{Path(outcome.path).name[:40]}: {outcome.status}")

    with progress:
        result: EvaluationResult = evaluate(analyzer, dataset, options, on_event, command)
    return result


def _e(text: object) -> str:
    """Names from the user's files (documents, dataset folders, label columns) as written: no markup, one line."""
    return escape(printable(str(text)))


def print_plan(console: Console, dataset: Dataset, rows: list[PlanRow], as_json: bool) -> None:
    if as_json:
        for case, report, verdict in rows:
            _json(
                {
                    "document": case.name,
                    "verdict": verdict,
                    "labelled_fields": sorted(case.labels),
                    "excluded": dict(case.excluded),
                    **(report.as_dict() if report else {}),
                }
            )
        return
    table = Table(
        title=f"{_e(dataset.name)}: {len(rows)} document(s), template {dataset.template} (dry run, no engine)"
    )
    for column in ("document", "tokens", "needed / window", "profile", "verdict", "labels", "not scored"):
        table.add_column(column, overflow="fold")
    for case, report, verdict in rows:
        color = "green" if verdict == "fits" else "yellow" if verdict.startswith("needs") else "red"
        table.add_row(
            _e(case.name),
            f"{report.document_tokens:,}" if report else "–",
            f"{report.needed:,} / {report.window:,}" if report else "–",
            report.profile if report else "–",
            f"[{color}]{verdict}[/{color}]",
            str(len(case.labels)),
            _e(", ".join(case.excluded)),
        )
    console.print(table)
    fits = sum(1 for _, _, v in rows if v == "fits" or v.startswith("needs"))
    console.print(f"{fits} of {len(rows)} would be analysed; the others would be counted as skipped")


def write_report(analyzer: Analyzer, result: EvaluationResult, folder: Path) -> Path:
    assert result.evaluation_id is not None
    return reports.write(*load_evaluation(analyzer.store, result.evaluation_id), folder)


def print_result(console: Console, errors: Console, result: EvaluationResult, report: Path, as_json: bool) -> None:
    print_summary(console, {**result.summary(), "evaluation_id": result.evaluation_id}, report, as_json)
    if not as_json:
        for item in result.items:
            if item.row.status in ("skipped", "unreadable") and item.row.error:
                errors.print(f"{item.row.status}: {one_line(item.row.error)}", markup=False, highlight=False)


def show(store: Store, evaluation_id: int, console: Console, folder: Path | None, as_json: bool) -> None:
    """A stored evaluation: its figures, and its report written again where asked."""
    evaluation, items = load_evaluation(store, evaluation_id)
    report = reports.write(evaluation, items, folder) if folder else None
    print_summary(console, {**evaluation.summary, "evaluation_id": evaluation.id}, report, as_json)


def print_summary(console: Console, summary: dict[str, Any], report: Path | None, as_json: bool) -> None:
    if as_json:
        chart = str(report.with_name("chart.png")) if report else None
        _json({**summary, "report": str(report) if report else None, "chart": chart})
        return
    st, totals = summary["status"], summary["totals"]
    table = Table(
        title=_e(
            f"evaluation {summary['evaluation_id']}: {summary['dataset']} · {summary['profile']} "
            f"({summary['model']}) · {summary['template']} v{summary['template_version']}"
        )
    )
    columns = ("field", "right", "wrong", "missing", "spurious", "absent ok", "precision", "recall", "F1", "AUPR",
               "P@80%R")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "field" else "right")
    for name, c in [*summary["fields"].items(), ("all fields", totals)]:
        table.add_row(
            _e(name), *(str(c[k]) for k in ("right", "wrong", "missing", "spurious", "absent_ok")),
            pct(c["precision"]), pct(c["recall"]), pct(c["f1"]), *ranked_cells(c),
        )  # fmt: skip
    console.print(table)
    g = summary["grounding"]
    console.print(
        f"documents {summary['documents']}: scored {st['scored']}, failed {st['failed']}, "
        f"skipped (over budget) {st['skipped']}, unreadable {st['unreadable']} · "
        f"reused runs {summary['reused_runs']} · "
        f"quotes found {g['found']}/{g['quotes']} ({pct(g['rate'])}) · {summary['time']['wall_s']} s"
    )
    aggregations = summary.get("aggregations") or {}
    if aggregations:
        console.print(
            "confidence ranking (AUPR / P@80%R): "
            + " · ".join(
                f"{how}{' (used)' if how == summary.get('aggregation') else ''} {' / '.join(ranked_cells(c))}"
                for how, c in aggregations.items()
            )
        )
    if report:
        console.print(
            f"report: {escape(show_path(report))}\nchart:  {escape(show_path(report.with_name('chart.png')))}"
        )


def print_list(console: Console, rows: Sequence[EvaluationRow], as_json: bool) -> None:
    if as_json:
        for ev in rows:
            _json({"id": ev.id, "created_at": ev.created_at.isoformat(), **ev.summary})
        return
    table = Table(title=f"{len(rows)} evaluation(s)")
    columns = ("id", "when (UTC)", "dataset", "template", "profile", "model", "scored", "precision", "recall", "F1",
               "AUPR")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for ev in rows:
        totals = ev.summary["totals"]
        table.add_row(
            str(ev.id), ev.created_at.strftime("%Y-%m-%d %H:%M"), _e(ev.dataset),
            f"{ev.template} v{ev.template_version}", _e(ev.profile), _e(ev.model), f"{ev.scored}/{ev.documents}",
            pct(totals["precision"]), pct(totals["recall"]), pct(totals["f1"]), ranked_cells(totals)[0],
        )  # fmt: skip
    console.print(table)


def load_evaluation(store: Store, evaluation_id: int) -> tuple[EvaluationRow, list[EvaluationItemRow]]:
    loaded = store.get_evaluation(evaluation_id)
    if loaded is None:
        raise DocanalystError(f"no evaluation {evaluation_id} (see `docanalyst eval list`)")
    return loaded


def load_evaluations(store: Store, ids: Sequence[int]) -> list[EvaluationRow]:
    return [load_evaluation(store, evaluation_id)[0] for evaluation_id in ids]


def print_compare(console: Console, evaluations: Sequence[EvaluationRow], folder: Path | None) -> None:
    datasets = {ev.dataset for ev in evaluations}
    if len(datasets) > 1:
        console.print(f"[yellow]warning:[/yellow] different datasets ({_e(', '.join(sorted(datasets)))})")
    table = Table(title="F1 per field (precision / recall)")
    table.add_column("field")
    for ev in evaluations:
        table.add_column(f"#{ev.id} {_e(ev.profile)}\n{_e(ev.model)}\n{ev.template} v{ev.template_version}")
    fields = reports.field_names(evaluations)
    for name in [*fields, "all fields"]:
        cells = []
        for ev in evaluations:
            c = ev.summary["totals"] if name == "all fields" else ev.summary["fields"].get(name)
            cells.append("–" if c is None else f"{pct(c['f1'])} ({pct(c['precision'])} / {pct(c['recall'])})")
        table.add_row(_e(name), *cells)
    console.print(table)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        reports.chart(evaluations, folder / "compare.png")
        (folder / "compare.md").write_text(reports.compare_markdown(evaluations, "compare.png"), encoding="utf-8")
        console.print(
            f"report: {escape(show_path(folder / 'compare.md'))}\nchart:  {escape(show_path(folder / 'compare.png'))}"
        )
