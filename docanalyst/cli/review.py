"""``docanalyst review RUN``: accept, edit or reject a stored run's values from a script, or see its reviews.

The same service as the web app's review workspace (reviewing.py): the model's answer is kept, each decision
is a new revision with who and when, and a quote given with ``--quote`` is checked against the document.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from docanalyst.cli.common import emit_json, out, path_text, safe_text, settings
from docanalyst.cli.options import DbOpt, JsonOpt, RowId
from docanalyst.errors import ConfigError, DocanalystError
from docanalyst.statuses import ReviewAction


def review(
    run_id: Annotated[int, typer.Argument(min=1, max=RowId, help="Run id (see `docanalyst list`).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE: the right value of a field (e.g. --set governing_law=Delaware)."),
    ] = None,
    accept: Annotated[list[str] | None, typer.Option("--accept", help="FIELD: the model's value is right.")] = None,
    reject: Annotated[
        list[str] | None, typer.Option("--reject", help="FIELD: the document does not say this (no value).")
    ] = None,
    quote: Annotated[
        str | None, typer.Option("--quote", help="Evidence for the one --set or --accept: text from the document.")
    ] = None,
    page: Annotated[int | None, typer.Option("--page", min=1, help="The page of --quote.")] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Reviewer's name (default: DOCANALYST_REVIEWER or your login).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the audit trail.")] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Review a stored run: with --set/--accept/--reject, store the decisions; without, show each value's review."""
    from docanalyst.reviewing import Correction, parse_set
    from docanalyst.reviewing import review as store_review
    from docanalyst.store import Store

    store = Store(settings(db).db_url)
    corrections = [Correction(p, ReviewAction.EDITED, v) for p, v in map(parse_set, set_ or [])]
    corrections += [Correction(p, ReviewAction.ACCEPTED) for p in accept or []]
    corrections += [Correction(p, ReviewAction.REJECTED) for p in reject or []]
    if quote is not None or page is not None:
        quotable = [c for c in corrections if c.action is not ReviewAction.REJECTED]
        if len(quotable) != 1:
            raise ConfigError("--quote and --page go with exactly one --set or --accept")
        one = quotable[0]
        corrections[corrections.index(one)] = Correction(one.path, one.action, one.value, quote, page)
    if corrections:
        reviewer = by or os.environ.get("DOCANALYST_REVIEWER") or _login()
        store_review(store, run_id, corrections, reviewer, note=note)
    _print(store, run_id, as_json)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def _print(store: Any, run_id: int, as_json: bool) -> None:
    from docanalyst.reviewing import reviewed_fields
    from docanalyst.revisions import revisions_of

    found = store.get_run(run_id)
    if found is None:
        raise DocanalystError(f"no run with id {run_id}")
    run, doc, fields = found
    items = reviewed_fields(fields, revisions_of(store, [run_id])[run_id])
    if as_json:
        emit_json({"run_id": run_id, "document": doc.path, "template": run.template, "fields": items})
        return
    table = Table(title=f"run {run_id} — {safe_text(run.template)} — reviews")
    for column in ("field", "model's value", "review", "reviewed value", "evidence", "by"):
        table.add_column(column, overflow="fold", max_width=40)
    for item in items:
        r = item["review"]
        evidence = "" if not r or not r["quote_status"] else ("✓ " if r["found"] else "✗ ") + r["quote_status"]
        table.add_row(
            safe_text(item["path"]),
            safe_text(item["value"]) if item["value"] is not None else "[dim]null[/dim]",
            r["action"] if r else "[dim]not reviewed[/dim]",
            safe_text(r["value"]) if r and r["value"] is not None else "",
            evidence,
            f"{safe_text(r['reviewer'])} {r['at'][:16]}" if r else "",
        )
    out().print(f"[bold]{path_text(doc.path)}[/bold]")
    out().print(table)
