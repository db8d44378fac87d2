"""Stored ``docanalyst eval`` results as the Evaluations page shows them: tables, chart data, the report.

Pure functions of the stored rows; the Markdown report is the command line's own (evaluation.report)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from docanalyst.evaluation import report as eval_report
from docanalyst.store import EvaluationItemRow, EvaluationRow


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _ranked(counts: dict[str, Any]) -> dict[str, float | None]:
    """CUAD's ranked measures, from each value's confidence: precision at 80 % recall and the area under the
    precision-recall curve (None where there were no confidences, e.g. evaluations stored before them)."""
    return {"P@80%R %": _pct(counts.get("precision_at_80_recall")), "AUPR %": _pct(counts.get("aupr"))}


def evaluation_rows(evaluations: Iterable[EvaluationRow]) -> list[dict[str, Any]]:
    rows = []
    for ev in evaluations:
        totals = ev.summary["totals"]
        rows.append(
            {
                "evaluation": ev.id,
                "when (UTC)": ev.created_at.strftime("%Y-%m-%d %H:%M"),
                "dataset": ev.dataset,
                "template": f"{ev.template} v{ev.template_version}",
                "profile": ev.profile,
                "model": ev.model,
                "scored": f"{ev.scored} of {ev.documents}",
                "precision %": _pct(totals["precision"]),
                "recall %": _pct(totals["recall"]),
                "F1 %": _pct(totals["f1"]),
                **_ranked(totals),
            }
        )
    return rows


def evaluation_field_rows(evaluation: EvaluationRow) -> list[dict[str, Any]]:
    """Per field: the counts and precision / recall / F1 in percent (None where nothing was claimed/labelled)."""
    rows = []
    for name, c in [*evaluation.summary["fields"].items(), ("(all fields)", evaluation.summary["totals"])]:
        rows.append(
            {
                "field": name,
                "right": c["right"],
                "wrong": c["wrong"],
                "missing": c["missing"],
                "spurious": c["spurious"],
                "rightly absent": c["absent_ok"],
                "precision %": _pct(c["precision"]),
                "recall %": _pct(c["recall"]),
                "F1 %": _pct(c["f1"]),
                **_ranked(c),
            }
        )
    return rows


def evaluation_document_rows(items: Iterable[EvaluationItemRow]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        scores = json.loads(item.scores_json)
        rows.append(
            {
                "document": item.name,
                "status": item.status,
                "run": item.run_id,
                "pages": item.pages,
                "tokens in": item.prompt_tokens,
                "right": sum(s["right"] for s in scores) if scores else None,
                "of labels": sum(s["right"] + s["wrong"] + s["missing"] for s in scores) if scores else None,
                "quotes found": f"{item.quotes_found} / {item.quotes_total}" if item.quotes_total is not None else "",
                "detail": (item.error or "").split(": ", 1)[-1] if item.status in ("skipped", "unreadable") else "",
            }
        )
    return rows


def evaluation_chart_data(evaluations: list[EvaluationRow]) -> dict[str, dict[str, float]]:
    """F1 per field (0-1), one series per evaluation: what ``st.bar_chart`` draws."""
    fields = eval_report.field_names(evaluations)
    return {
        f"#{ev.id} {ev.profile} · {ev.template} v{ev.template_version}": {
            name: (ev.summary["fields"].get(name) or {}).get("f1") or 0.0 for name in fields
        }
        for ev in evaluations
    }


def evaluation_markdown(evaluation: EvaluationRow, items: list[EvaluationItemRow]) -> str:
    return eval_report.markdown(evaluation, items, None)
