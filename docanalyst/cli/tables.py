"""How one document's result looks on a terminal: the head line, the answer to a question, the evidence summary
and the field table (value, page, quote, where the quote was found, the value's confidence).

Shared by ``extract``/``ask`` (an Outcome's GroundedFields) and ``show`` (a stored run's FieldRows): both have
``path``, ``value``, ``page``, ``quote``, ``found_page``, ``score`` and ``confidence``; the quote status is
``status`` on one and ``quote_status`` on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from docanalyst.cli.common import err, out, path_text, safe_text
from docanalyst.display import one_line, show_path
from docanalyst.errors import PartialResultError
from docanalyst.statuses import QuoteStatus

_STATUS_MARK: dict[str, str] = {
    QuoteStatus.EXACT: "[green]✓ exact[/green]",
    QuoteStatus.NORMALISED: "[green]✓ normalised[/green]",
    QuoteStatus.FUZZY: "[yellow]≈ fuzzy[/yellow]",
    QuoteStatus.NOT_FOUND: "[red]✗ not in document[/red]",
    QuoteStatus.NO_QUOTE: "[dim]–[/dim]",
    QuoteStatus.CITED: "[green]✓ cited[/green]",
    QuoteStatus.UNKNOWN_REFERENCE: "[red]✗ unknown sentence id[/red]",
    QuoteStatus.TOO_SHORT: "[red]✗ quote too short to prove it[/red]",
    QuoteStatus.UNSUPPORTED: "[red]✗ quote does not say this[/red]",
}
_VERDICT_COLOUR = {"grounded": "green", "weak": "yellow", "ungrounded": "red"}


def evidence_line(grounding: dict[str, Any]) -> str:
    """The run's evidence in a line: its verdict, then how many quotes were verified and why the rest were not."""
    verdict = str(grounding.get("verdict", ""))
    colour = _VERDICT_COLOUR.get(verdict, "white")
    rest = [f"{grounding[k]} {k.replace('_', ' ')}" for k in ("too_short", "unsupported") if grounding.get(k)]
    return (
        f"  evidence: [{colour}]{verdict}[/{colour}] — {grounding['found']} of {grounding['quotes']} quotes verified "
        f"({grounding['on_cited_page']} on the cited page)" + (f"; {', '.join(rest)}" if rest else "")
    )


def quote_status(field: Any) -> str:
    """The quote status of a GroundedField (``status``) or a stored FieldRow (``quote_status``)."""
    return str(getattr(field, "status", None) or getattr(field, "quote_status", None) or QuoteStatus.NO_QUOTE)


def confidence_text(value: float | None) -> str:
    """A confidence as printed: two decimals (0.93), blank when the value has none."""
    return "" if value is None else f"{value:.2f}"


def visible(fields: Sequence[Any], min_confidence: float | None) -> tuple[list[Any], int]:
    """The fields ``--min-confidence`` keeps, and how many it hid (confidence.below is the one rule)."""
    if min_confidence is None:
        return list(fields), 0
    from docanalyst.confidence import below

    kept = [f for f in fields if not below(getattr(f, "confidence", None), min_confidence)]
    return kept, len(fields) - len(kept)


def fields_table(fields: Sequence[Any], title: str = "") -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("field")
    table.add_column("value", overflow="fold", max_width=50)
    table.add_column("page", justify="right")
    table.add_column("quote", overflow="fold", max_width=60)
    table.add_column("evidence")
    table.add_column("confidence", justify="right")
    for f in fields:
        status = quote_status(f)
        mark = _STATUS_MARK.get(status, safe_text(status))  # a StrEnum key is found by its word
        if status == QuoteStatus.FUZZY and f.score:
            mark += f" {f.score:.0f}"
        if f.found_page and f.found_page != f.page:
            mark += f" [yellow](on page {f.found_page})[/yellow]"
        table.add_row(
            safe_text(f.path),
            safe_text(f.value, keep="\n") if f.value is not None else "[dim]null[/dim]",
            str(f.page) if f.page else "",
            safe_text(f.quote or "", keep="\n"),
            mark,
            confidence_text(getattr(f, "confidence", None)),
        )
    return table


def hidden_note(hidden: int, min_confidence: float | None) -> None:
    """Say how many values ``--min-confidence`` hid, so a short table is not mistaken for a short answer."""
    if hidden:
        out().print(f"  {hidden} value(s) with a confidence below {min_confidence:g} hidden", highlight=False)


def print_outcome(outcome: Any, min_confidence: float | None = None) -> None:
    """One document's outcome as `extract` and `ask` print it."""
    console = out()
    console.print(_head(outcome))
    for warning in outcome.as_json()["warnings"]:
        console.print(f"  [yellow]warning:[/yellow] {safe_text(warning)}", highlight=False)
    if outcome.result is None:
        console.print(f"  status: [red]{safe_text(outcome.status)}[/red]")
        return
    if outcome.question:
        console.print(f"  [bold]Q:[/bold] {safe_text(outcome.question)}", highlight=False)
        answer = outcome.result.get("answer") or "(no answer)"
        console.print(f"  [bold]A:[/bold] {safe_text(answer, keep=chr(10))}", highlight=False)
    grounding = outcome.as_json()["grounding"]
    if grounding and grounding["quotes"]:
        console.print(evidence_line(grounding), highlight=False)
    label = outcome.template.label if outcome.template else ""
    shown, hidden = visible(outcome.fields, min_confidence)
    console.print(fields_table(shown, f"{safe_text(label)} — run {outcome.run_id} — {safe_text(outcome.status)}"))
    hidden_note(hidden, min_confidence)
    usage, timings = outcome.usage, outcome.timings
    console.print(
        f"  tokens: prompt {usage.get('prompt_tokens', 0):,}, cached {usage.get('cached_tokens', 0):,}, "
        f"output {usage.get('completion_tokens', 0):,}; " + ", ".join(f"{k} {v}" for k, v in timings.items()),
        highlight=False,
    )


def _head(outcome: Any) -> str:
    head = f"[bold]{path_text(outcome.path)}[/bold]"
    if outcome.document is not None:
        head += f"  {outcome.document.page_count} pages"
    if outcome.budget is not None:
        head += f", {outcome.budget.document_tokens:,} tokens"
    if outcome.profile:
        head += f"  profile {safe_text(outcome.profile)} ({safe_text(outcome.model)})"
    return head


def report(outcomes: Sequence[Any], as_json: bool, min_confidence: float | None = None) -> int:
    """Print every outcome; one error line each on stderr for the failed. Returns the exit code: 0 when all
    succeeded, the failures' common exit code when they share one, else 1."""
    from docanalyst.cli.common import emit_json

    for outcome in outcomes:
        if as_json:
            emit_json(hide_in_json(outcome.as_json(), outcome.fields, min_confidence))
        else:
            print_outcome(outcome, min_confidence)
        if not outcome.ok:
            _error_line(outcome)
    if all(o.ok for o in outcomes):
        return 0
    codes = [o.error.exit_code for o in outcomes if not o.ok and o.error is not None]
    return codes[0] if len(set(codes)) == 1 else 1


def _error_line(outcome: Any) -> None:
    if outcome.error is None:
        err().print(f"error: {show_path(outcome.path)}: {one_line(outcome.status)}", markup=False)
        return
    # A partial result is stored and shown; its line says so instead of "error" (exit code 8).
    if outcome.error.exit_code == PartialResultError.exit_code:
        line = "partial: " + one_line(str(outcome.error).replace("partial result: ", "", 1))
    else:
        line = f"error: {one_line(str(outcome.error))}"
    err().print(line, markup=False, highlight=False)


def hide_in_json(record: dict[str, Any], fields: Sequence[Any], min_confidence: float | None) -> dict[str, Any]:
    """``extract --json --min-confidence``: the record names the values below the threshold under ``hidden``,
    as exports do (exporting.run_record); ``result`` stays the model's answer, each value with its confidence."""
    if min_confidence is None or record.get("result") is None:
        return record
    shown = {f.path for f in visible(fields, min_confidence)[0]}
    return {**record, "min_confidence": min_confidence, "hidden": [f.path for f in fields if f.path not in shown]}
