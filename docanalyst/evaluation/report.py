"""The evaluation report: Markdown a person reads (and docs/EVALUATION.md quotes) and a PNG chart of
per-field precision, recall and F1. ``compare`` puts several stored evaluations side by side.

matplotlib is imported only here, only when a chart is drawn, with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docanalyst.store import EvaluationItemRow, EvaluationRow

_CELL_MAX = 70


def field_names(evaluations: Sequence[EvaluationRow]) -> list[str]:
    """Every field any of the evaluations scored, in first-seen order (the rows of a comparison)."""
    names: list[str] = []
    for ev in evaluations:
        names += [f for f in ev.summary["fields"] if f not in names]
    return names


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _cell(text: Any) -> str:
    text = "" if text is None else str(text)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def _reason(item: EvaluationItemRow) -> str:
    """The error without the path (the document is named beside it)."""
    text = (item.error or "").split(": ", 1)[-1] if item.error and item.error.startswith("/") else item.error or ""
    return text.replace("\n", " ")


def _verdict(score: dict[str, Any]) -> str:
    order = ("right", "wrong", "missing", "spurious", "absent_ok")
    parts = [f"{k.replace('_', ' ')} {score[k]}" for k in order if score.get(k)]
    return ", ".join(parts)


def markdown(evaluation: EvaluationRow, items: Sequence[EvaluationItemRow], chart: str | None) -> str:
    s = evaluation.summary
    lines = [*_head(evaluation), *_summary(s), *_per_field(s), *_aggregations(s)]
    if chart:
        lines += ["", f"![per-field precision, recall and F1]({chart})"]
    lines += _per_document(items)
    lines += _labels(items)
    if s["excluded_labels"]:
        lines += ["## Labels not scored (faults in the labels)", ""]
        lines += [f"- {_cell(x['document'])} · {x['field']}: {x['why']}" for x in s["excluded_labels"]]
        lines.append("")
    if s["notes"]:
        lines += ["## Notes on the dataset", ""] + [f"- {n}" for n in s["notes"]] + [""]
    return "\n".join(lines)


def ranked_cells(c: dict[str, Any]) -> tuple[str, str]:
    """AUPR and precision at 80 % recall as printed; "–" where there are none (no labels, no confidences, or an
    evaluation stored before they existed)."""
    return pct(c.get("aupr")), pct(c.get("precision_at_80_recall"))


def _head(evaluation: EvaluationRow) -> list[str]:
    s = evaluation.summary
    st = s["status"]
    return [
        f"# Evaluation {evaluation.id}: `{s['dataset']}` with `{s['profile']}` ({s['model']})",
        "",
        f"- date: {evaluation.created_at:%Y-%m-%d %H:%M} UTC; docanalyst {s['docanalyst_version']}",
        f"- command: `{s.get('command') or '(not recorded)'}`",
        f"- labels: `{s['source']}`",
        f"- template: `{s['template']}` v{s['template_version']} (schema {s['schema_hash']}); "
        "temperature 0, seed 0, JSON-schema-guided decoding",
        f"- documents: {s['documents']} — scored {st['scored']}, failed {st['failed']} (no valid answer: its "
        f"labels count as missing), skipped for budget {st['skipped']}, unreadable {st['unreadable']}; "
        f"{s['reused_runs']} answered from stored runs",
        f"- confidence: `{s.get('aggregation') or '–'}` of the value's token probabilities (confidence.py); AUPR "
        "and precision at 80 % recall rank the values by it, CUAD-style",
        "",
    ]


def _summary(s: dict[str, Any]) -> list[str]:
    totals, time_, tokens, grounding = s["totals"], s["time"], s["tokens"], s["grounding"]
    aupr, at80 = ranked_cells(totals)
    return [
        "## Summary",
        "",
        "| labels scored | right | wrong | missing | spurious | rightly absent | precision | recall | F1 | AUPR "
        "| P @ 80 % R | grounding |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {sum(totals[k] for k in ('right', 'wrong', 'missing', 'spurious', 'absent_ok'))} | {totals['right']} "
        f"| {totals['wrong']} | {totals['missing']} | {totals['spurious']} | {totals['absent_ok']} "
        f"| {pct(totals['precision'])} | {pct(totals['recall'])} | {pct(totals['f1'])} | {aupr} | {at80} "
        f"| {grounding['found']} of {grounding['quotes']} quotes found ({pct(grounding['rate'])}) |",
        "",
        f"Tokens per analysed document: {tokens['prompt_mean'] or '–'} in, {tokens['completion_mean'] or '–'} out. "
        f"Time: {time_['wall_s']} s in all (engine start {time_['engine_start_s'] or '–'} s), "
        f"{time_['wall_per_analysed_document_s'] or '–'} s per analysed document.",
    ]


def _per_field(s: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Per field",
        "",
        "| field | right | wrong | missing | spurious | rightly absent | precision | recall | F1 | AUPR | P @ 80 % R |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in s["fields"].items():
        aupr, at80 = ranked_cells(c)
        lines.append(
            f"| {name} | {c['right']} | {c['wrong']} | {c['missing']} | {c['spurious']} | {c['absent_ok']} "
            f"| {pct(c['precision'])} | {pct(c['recall'])} | {pct(c['f1'])} | {aupr} | {at80} |"
        )
    return lines


def _aggregations(s: dict[str, Any]) -> list[str]:
    """The same answers ranked by each way of turning token probabilities into a confidence."""
    found = s.get("aggregations") or {}
    if not found:
        return []
    lines = ["", "## Confidence: aggregations compared on these labels", "",
             "| aggregation | AUPR | P @ 80 % R | values ranked | values without a confidence |",
             "|---|---|---|---|---|"]  # fmt: skip
    for how, c in found.items():
        aupr, at80 = ranked_cells(c)
        default = " (used)" if how == s.get("aggregation") else ""
        lines.append(f"| {how}{default} | {aupr} | {at80} | {c['claims']} | {c['claims_without_confidence']} |")
    return lines


def _per_document(items: Sequence[EvaluationItemRow]) -> list[str]:
    lines = [
        "",
        "## Per document",
        "",
        "| document | pages | status | tokens in | tokens out | seconds ¹ | right | wrong | missing | spurious "
        "| quotes found |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for item in items:
        scores = json.loads(item.scores_json)
        counts = {k: sum(sc[k] for sc in scores) for k in ("right", "wrong", "missing", "spurious")}
        status = item.status
        if item.status == "skipped":
            status = "skipped (over the window)"
        elif item.run_status not in (None, "ok", "cached"):
            status = f"{item.status} ({item.run_status})"
        quotes = f"{item.quotes_found} / {item.quotes_total}" if item.quotes_total is not None else "–"
        tally = " | ".join(str(counts[k]) if scores else "–" for k in ("right", "wrong", "missing", "spurious"))
        seconds = f"{item.total_s:.1f}" if item.total_s is not None else "–"
        lines.append(
            f"| {_cell(item.name)} | {item.pages or '–'} | {status} | {item.prompt_tokens or '–'} "
            f"| {item.completion_tokens or '–'} | {seconds} | {tally} | {quotes} |"
        )
    lines += [
        "",
        "¹ reading + tokenising + the engine call the document took part in; documents of one batch share that "
        "call, so its time is counted for each of them (the wall time per analysed document above is the "
        "per-document cost).",
    ]
    not_analysed = [i for i in items if not json.loads(i.scores_json)]
    if not_analysed:
        lines += ["", "## Not analysed", ""]
        lines += [f"- {i.name}: {i.status} — {_reason(i)}" for i in not_analysed]
    return lines


def _labels(items: Sequence[EvaluationItemRow]) -> list[str]:
    """Every label beside the prediction, its verdict and the prediction's confidence."""
    lines = ["", "## Labels and predictions", ""]
    for item in items:
        scores = json.loads(item.scores_json)
        if not scores:
            continue
        lines += [f"**{item.name}** (run {item.run_id}, {item.run_status})", ""]
        lines += ["| field | label | prediction | confidence | verdict |", "|---|---|---|---|---|"]
        for sc in scores:
            label = "; ".join(sc["expected"]) or "(none)"
            predicted = "; ".join(sc["predicted"]) or "(null)"
            lines.append(f"| {sc['field']} | {_cell(label)} | {_cell(predicted)} | {_claimed(sc)} | {_verdict(sc)} |")
        lines.append("")
    return lines


def _claimed(score: dict[str, Any]) -> str:
    """The confidences of a field's claims (right ✓, wrong ✗), highest first."""
    claims = sorted(score.get("claims") or [], key=lambda c: -(c["confidence"] or 0.0))
    marks = [f"{c['confidence']:.3f} {'✓' if c['right'] else '✗'}" for c in claims if c["confidence"] is not None]
    return "; ".join(marks) or "–"


def chart(evaluations: Sequence[EvaluationRow], path: Path) -> Path:
    """Per-field bars: precision, recall and F1 for one evaluation; F1 per evaluation for several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = field_names(evaluations)
    if len(evaluations) == 1:
        per_field = evaluations[0].summary["fields"]
        series = {m: [per_field[f][m] or 0.0 for f in fields] for m in ("precision", "recall", "f1")}
        ev = evaluations[0]
        title = (
            f"{ev.dataset} · {ev.profile} ({ev.model}) · {ev.template} v{ev.template_version}\n"
            f"{ev.scored} of {ev.documents} documents scored ({ev.skipped} over the window, {ev.failed} failed)"
        )
    else:
        series = {
            f"#{ev.id} {ev.profile} · {ev.template} v{ev.template_version}": [
                (ev.summary["fields"].get(f) or {}).get("f1") or 0.0 for f in fields
            ]
            for ev in evaluations
        }
        title = f"F1 per field · {evaluations[0].dataset}"
    height = max(2.5, 0.22 * len(fields) * len(series) + 1.4)
    fig, ax = plt.subplots(figsize=(8, height), dpi=110)
    bar = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        ys = [j + i * bar for j in range(len(fields))]
        bars = ax.barh(ys, values, height=bar, label=label)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    ax.set_yticks([j + bar * (len(series) - 1) / 2 for j in range(len(fields))], fields)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("score (0–1)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bar's label
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def write(evaluation: EvaluationRow, items: Sequence[EvaluationItemRow], folder: Path) -> Path:
    """report.md and chart.png in ``folder``; returns the Markdown file."""
    folder.mkdir(parents=True, exist_ok=True)
    chart([evaluation], folder / "chart.png")
    report = folder / "report.md"
    report.write_text(markdown(evaluation, items, "chart.png") + "\n", encoding="utf-8")
    return report


def compare_markdown(evaluations: Sequence[EvaluationRow], chart_name: str | None) -> str:
    heads = [f"#{ev.id} {ev.profile} ({ev.model}) · {ev.template} v{ev.template_version}" for ev in evaluations]
    lines = [f"# Comparison of evaluations {', '.join(str(ev.id) for ev in evaluations)}", "",
             "| field | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]  # fmt: skip
    fields = field_names(evaluations)
    for name in [*fields, "(all fields)"]:
        cells = []
        for ev in evaluations:
            c = ev.summary["totals"] if name == "(all fields)" else ev.summary["fields"].get(name)
            cells.append("–" if c is None else f"F1 {pct(c['f1'])} (P {pct(c['precision'])}, R {pct(c['recall'])})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rows = {
        "right / wrong / missing / spurious (all fields)": lambda ev: " / ".join(
            str(ev.summary["totals"][k]) for k in ("right", "wrong", "missing", "spurious")
        ),
        "documents scored": lambda ev: f"{ev.scored} of {ev.documents}",
        "documents without a valid answer": lambda ev: str(ev.summary["status"]["failed"]),
        "AUPR (all fields)": lambda ev: ranked_cells(ev.summary["totals"])[0],
        "precision at 80 % recall (all fields)": lambda ev: ranked_cells(ev.summary["totals"])[1],
        "grounding": lambda ev: pct(ev.summary["grounding"]["rate"]),
        "seconds per analysed document": lambda ev: str(ev.summary["time"]["wall_per_analysed_document_s"] or "–"),
    }
    for label, get in rows.items():
        lines.append(f"| {label} | " + " | ".join(get(ev) for ev in evaluations) + " |")
    if chart_name:
        lines += ["", f"![F1 per field]({chart_name})"]
    return "\n".join(lines) + "\n"
