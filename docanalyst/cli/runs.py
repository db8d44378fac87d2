"""``list``, ``show`` and ``export``: the stored runs, read back from the database (no engine, no PDF).

``--min-confidence`` on ``show`` and ``export`` hides the values below it the same way everywhere: the rule is
``confidence.below`` and the records come from ``exporting.run_record``, as in the web app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from docanalyst.cli.common import emit_json, err, out, path_text, safe_text, settings
from docanalyst.cli.options import DbOpt, ExportFormat, JsonOpt, MinConfidenceOpt, RowId
from docanalyst.cli.tables import evidence_line, fields_table, hidden_note, visible
from docanalyst.errors import DocanalystError
from docanalyst.statuses import RunStatus


def _store(db: str | None) -> Any:
    from docanalyst.store import Store

    return Store(settings(db).db_url)


def _record(store: Any, found: tuple[Any, Any, Any], min_confidence: float | None) -> dict[str, Any]:
    """A run as exported, with its reviews (the model's values stay; each review sits beside its value)."""
    from docanalyst.exporting import run_record
    from docanalyst.revisions import revisions_of

    run, doc, fields = found
    revisions = revisions_of(store, [run.id])[run.id]
    return run_record(run, doc, fields, min_confidence=min_confidence, revisions=revisions)


def list_runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=RowId, help="How many runs, newest first.")] = 50,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List stored runs."""
    from docanalyst.exporting import run_record

    rows = _store(db).list_runs(limit)
    if as_json:
        for run, doc in rows:
            emit_json(run_record(run, doc, None))
        return
    table = Table(title=f"{len(rows)} run(s)")
    for col in ("run", "when (UTC)", "document", "pages", "template", "profile", "model", "status"):
        table.add_column(col)
    for run, doc in rows:
        table.add_row(
            str(run.id),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
            path_text(Path(doc.path).name),
            str(doc.pages),
            safe_text(f"{run.template}@v{run.template_version}"),
            safe_text(run.profile),
            safe_text(run.model),
            safe_text(run.status) if run.status == RunStatus.OK else f"[red]{safe_text(run.status)}[/red]",
        )
    out().print(table)


def show(
    run_id: Annotated[int, typer.Argument(min=1, max=RowId, help="Run id (see `docanalyst list`).")],
    min_confidence: MinConfidenceOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show one stored run: its fields, quotes, pages, whether each quote was found, and each value's confidence."""
    store = _store(db)
    found = store.get_run(run_id)
    if found is None:
        raise DocanalystError(f"no run with id {run_id}")
    if as_json:
        emit_json(_record(store, found, min_confidence))
        return
    run, doc, fields = found
    console = out()
    console.print(f"[bold]run {run.id}[/bold]  {path_text(doc.path)}  ({doc.pages} pages, {doc.tokens or '?'} tokens)")
    console.print(
        safe_text(
            f"  {run.template}@v{run.template_version} (schema {run.schema_hash}), profile {run.profile}, "
            f"model {run.model}, status {run.status}, attempts {run.attempts}"
        ),
        highlight=False,
    )
    if run.error:
        console.print(f"  [red]error:[/red] {safe_text(run.error)}", highlight=False)
    console.print(
        f"  tokens: prompt {run.prompt_tokens}, cached {run.cached_tokens}, output {run.completion_tokens}",
        highlight=False,
    )
    if fields:
        from docanalyst.grounding import summarise
        from docanalyst.revisions import revisions_of
        from docanalyst.store import grounded_field

        console.print(evidence_line(summarise([grounded_field(f) for f in fields]).as_dict()), highlight=False)
        shown, hidden = visible(fields, min_confidence)
        console.print(fields_table(shown))
        hidden_note(hidden, min_confidence)
        reviewed = len(revisions_of(store, [run_id])[run_id])
        if reviewed:
            console.print(f"  {reviewed} review(s): `docanalyst review {run_id}` shows them", highlight=False)


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
    min_confidence: MinConfidenceOpt = None,
    db: DbOpt = None,
) -> None:
    """Export stored runs (with each value's confidence; --min-confidence leaves the doubtful ones out)."""
    from docanalyst.exporting import to_field_csv, to_json, to_jsonl, to_wide_csv

    store = _store(db)
    ids = run_ids or [run.id for run, _ in store.list_runs(limit=1_000_000) if run.id is not None]
    records = []
    for rid in ids:
        found = store.get_run(int(rid))
        if found is None:
            raise DocanalystError(f"no run with id {rid}")
        records.append(_record(store, found, min_confidence))
    writers = {ExportFormat.json: to_json, ExportFormat.jsonl: to_jsonl, ExportFormat.csv: to_field_csv,
               ExportFormat.wide: to_wide_csv}  # fmt: skip
    text = writers[fmt](records)
    if not output:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DocanalystError(f"cannot write the export: {exc.strerror or exc}", path=output) from exc
    err().print(f"wrote {len(records)} run(s) to {path_text(output)}")
