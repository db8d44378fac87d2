"""Run an evaluation: every labelled PDF through the real pipeline (one batch), each answer scored, the whole
evaluation stored as one row with its items, so two models, templates or profiles can be compared later.

The extraction runs themselves are ordinary stored runs: a document answered before with the same
template, schema, profile and model is reused (greedy decoding would repeat it) unless ``force``.

Beside the right/wrong counts, every field gets CUAD's ranked figures (AUPR, precision at 80 % recall) from the
values' confidences, and the whole evaluation is ranked again under each way of aggregating token probabilities
into a confidence (confidence.AGGREGATIONS), from the tokens stored with each run: which one ranks right answers
above wrong ones better is measured on every evaluation (docs/EVALUATION.md), not assumed once.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

from docanalyst import __version__
from docanalyst.batch import Event
from docanalyst.budget import BudgetReport
from docanalyst.confidence import AGGREGATIONS, DEFAULT_AGGREGATION, field_confidences, unpack
from docanalyst.errors import BudgetError, EngineError, PdfError
from docanalyst.evaluation.datasets import Dataset, EvalCase
from docanalyst.evaluation.scoring import (
    FieldScore,
    by_field,
    ranked,
    ranked_by_field,
    score_result,
    total,
    with_confidences,
)
from docanalyst.grounding import summarise
from docanalyst.pipeline import FLAGGED_STATUSES, Analyzer, ExtractOptions, Outcome
from docanalyst.profiles import default_profile_name, get_profile
from docanalyst.prompting import load_template
from docanalyst.schemas import schema_hash
from docanalyst.store import EvaluationItemRow, EvaluationRow, Store


@dataclass
class ItemResult:
    """One document: its labels (``case``), the stored row, and the scores the row's ``scores_json`` holds.
    ``row.status``: scored | failed (no valid answer: its labels count as missing) | skipped (budget) | unreadable."""

    case: EvalCase
    row: EvaluationItemRow
    scores: list[FieldScore] = field(default_factory=list)
    # the same answer scored with each aggregation's confidences (confidence.AGGREGATIONS; see _rescored)
    rescored: dict[str, list[FieldScore]] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    dataset: Dataset
    profile: str
    model: str
    items: list[ItemResult]
    wall_s: float
    engine_start_s: float | None
    reused: int
    evaluation_id: int | None = None
    command: str | None = None

    def summary(self) -> dict[str, Any]:
        template = load_template(self.dataset.template)
        scores = [s for item in self.items for s in item.scores]
        rows = [i.row for i in self.items]
        statuses = {k: sum(r.status == k for r in rows) for k in ("scored", "failed", "skipped", "unreadable")}
        analysed = [r for r in rows if r.status in ("scored", "failed")]
        quotes = sum(i.quotes_total or 0 for i in analysed)
        found = sum(i.quotes_found or 0 for i in analysed)
        prompt = [i.prompt_tokens for i in analysed if i.prompt_tokens]
        completion = [i.completion_tokens for i in analysed if i.completion_tokens]
        return {
            "dataset": self.dataset.name,
            "source": str(self.dataset.source),
            "template": template.name,
            "template_version": template.version,
            "schema_hash": schema_hash(template.result_model),
            "profile": self.profile,
            "model": self.model,
            "docanalyst_version": __version__,
            "command": self.command,
            "documents": len(self.items),
            "status": statuses,
            "reused_runs": self.reused,
            "totals": {**total(scores).as_dict(), **ranked(scores)},
            "fields": _fields(scores),
            "aggregation": DEFAULT_AGGREGATION,
            "aggregations": self.aggregations(),
            "grounding": {"quotes": quotes, "found": found, "rate": round(found / quotes, 4) if quotes else None},
            "tokens": {
                "prompt_mean": round(statistics.mean(prompt)) if prompt else None,
                "prompt_total": sum(prompt),
                "completion_mean": round(statistics.mean(completion)) if completion else None,
                "completion_total": sum(completion),
            },
            "time": {
                "wall_s": round(self.wall_s, 2),
                "engine_start_s": None if self.engine_start_s is None else round(self.engine_start_s, 2),
                "wall_per_analysed_document_s": round(self.wall_s / len(analysed), 2) if analysed else None,
            },
            "excluded_labels": [
                {"document": i.case.name, "field": f, "why": why}
                for i in self.items
                for f, why in i.case.excluded.items()
            ],
            "notes": list(self.dataset.notes),
        }

    def aggregations(self) -> dict[str, dict[str, Any]]:
        """AUPR and precision at 80 % recall, pooled and per field, under each aggregation (the same answers)."""
        out: dict[str, dict[str, Any]] = {}
        for how in AGGREGATIONS:
            scores = [s for item in self.items for s in item.rescored.get(how, [])]
            out[how] = {**ranked(scores), "fields": ranked_by_field(scores)}
        return out

    def store_rows(self) -> tuple[EvaluationRow, list[EvaluationItemRow]]:
        summary = self.summary()
        row = EvaluationRow(
            dataset=self.dataset.name,
            dataset_path=str(self.dataset.source),
            template=summary["template"],
            template_version=summary["template_version"],
            schema_hash=summary["schema_hash"],
            profile=self.profile,
            model=self.model,
            documents=len(self.items),
            scored=summary["status"]["scored"],
            skipped=summary["status"]["skipped"],
            failed=summary["status"]["failed"] + summary["status"]["unreadable"],
            summary_json=json.dumps(summary, ensure_ascii=False),
            docanalyst_version=__version__,
        )
        return row, [i.row for i in self.items]


def eval_options(dataset: Dataset, options: ExtractOptions) -> ExtractOptions:
    """The dataset decides the template; any stored answer is reused (flagged ones too: they are the answer
    this model gave), ``force`` recomputes."""
    return replace(options, template=dataset.template, reuse_statuses=FLAGGED_STATUSES)


PlanRow = tuple[EvalCase, BudgetReport | None, str]


def plan(analyzer: Analyzer, dataset: Dataset, options: ExtractOptions) -> list[PlanRow]:
    """``--dry-run``: which documents fit the profile's window (no engine): (case, report, verdict)."""
    options = eval_options(dataset, options)
    rows: list[PlanRow] = []
    for case in dataset.cases:
        try:
            _, report, verdict = analyzer.budget(case.pdf, options)
        except PdfError as exc:
            rows.append((case, None, f"unreadable: {exc}"))
            continue
        rows.append((case, report, verdict))
    return rows


def evaluate(
    analyzer: Analyzer,
    dataset: Dataset,
    options: ExtractOptions,
    on_event: Event | None = None,
    command: str | None = None,
    workers: int = 2,
    batch_size: int = 16,
) -> EvaluationResult:
    """Extract every document of the dataset, score, store. Documents are read in parallel worker processes
    (each bounded in time and memory) and sent to the engine ``batch_size`` at a time, as ``batch`` does."""
    from docanalyst.batch import run_batch

    options = eval_options(dataset, options)
    profile = get_profile(default_profile_name(options.profile or analyzer.settings.profile))
    _, model_name = analyzer.resolve_model(profile, options.model_path)
    specs = load_template(dataset.template).field_specs
    started = time.perf_counter()
    outcomes = run_batch(
        analyzer,
        [c.pdf for c in dataset.cases],
        options,
        workers=workers,
        timeout_s=options.read_timeout_s + 60,
        batch_size=batch_size,
        on_event=on_event,
    )
    wall = time.perf_counter() - started
    engine_errors = [o.error for o in outcomes if isinstance(o.error, EngineError)]
    if engine_errors:  # no engine, no measurement: say why instead of reporting zeros
        raise engine_errors[0]
    items = [_item(case, outcome, specs) for case, outcome in zip(dataset.cases, outcomes, strict=True)]
    for item, outcome in zip(items, outcomes, strict=True):
        item.rescored = _rescored(analyzer.store, item, outcome, specs)
    result = EvaluationResult(
        dataset,
        profile.name,
        model_name,
        items,
        wall,
        analyzer.engine_start_s,
        reused=sum(1 for o in outcomes if o.status == "cached"),
        command=command,
    )
    row, rows = result.store_rows()
    result.evaluation_id = analyzer.store.save_evaluation(row, rows)
    return result


def _item(case: EvalCase, outcome: Outcome, specs: dict[str, Any]) -> ItemResult:
    doc = outcome.document
    row = EvaluationItemRow(
        evaluation_id=0,
        name=case.name,
        status="scored",
        run_status=outcome.status,
        run_id=outcome.run_id,
        document_sha256=doc.sha256 if doc else None,
        pages=doc.page_count if doc else None,
        error=str(outcome.error) if outcome.error else None,
        excluded_json=json.dumps(dict(case.excluded), ensure_ascii=False),
    )
    if isinstance(outcome.error, BudgetError):
        row.status = "skipped"
        return ItemResult(case, row)
    if outcome.run_id is None:  # never reached the engine: not the model's fault, not scored
        row.status = "unreadable"
        return ItemResult(case, row)
    row.prompt_tokens = outcome.usage.get("prompt_tokens")
    row.completion_tokens = outcome.usage.get("completion_tokens")
    # Reading + tokenising + the engine call(s) it took part in. Documents share one engine call, so the
    # call's time is theirs together; the summary's wall time per document is the fair per-document figure.
    t = outcome.timings
    parts = [t[k] for k in ("read_s", "tokenize_s", "generate_s_1", "generate_s_2") if t.get(k) is not None]
    row.total_s = round(sum(parts), 2) if parts else None
    if outcome.result is not None:
        grounding = summarise(outcome.fields)
        row.quotes_total, row.quotes_found = grounding.quotes, grounding.found
    # A partial run is scored on the fields it kept (the missing ones count as missing), like any answer.
    usable = outcome.ok or outcome.status == "partial"
    if not usable:
        row.status = "failed"
    scores = score_result(outcome.result if usable else None, case.labels, specs)
    row.scores_json = json.dumps([sc.as_dict() for sc in scores], ensure_ascii=False)
    return ItemResult(case, row, scores)


def _fields(scores: list[FieldScore]) -> dict[str, dict[str, Any]]:
    """Per field: the counts with precision, recall and F1, and CUAD's ranked figures beside them."""
    ranks = ranked_by_field(scores)
    return {name: {**counts.as_dict(), **ranks[name]} for name, counts in by_field(scores).items()}


def _rescored(store: Store, item: ItemResult, outcome: Outcome, specs: dict[str, Any]) -> dict[str, list[FieldScore]]:
    """The item's answer scored again with the confidences each aggregation gives, from the tokens stored with its
    run. An item without an answer keeps its scores (its labels are missing under any aggregation); a run stored
    without tokens gives claims without confidence, so the ranked figures say None rather than guess."""
    if item.row.status != "scored" or outcome.result is None or outcome.run_id is None:
        return {how: item.scores for how in AGGREGATIONS}
    loaded = store.get_run(outcome.run_id)
    tokens = unpack(loaded[0].token_logprobs_json) if loaded else None
    raw = (loaded[0].raw_output or "") if loaded else ""
    rescored: dict[str, list[FieldScore]] = {}
    for how in AGGREGATIONS:
        confidences = field_confidences(raw, *tokens, how=how) if tokens else {}
        rescored[how] = score_result(with_confidences(outcome.result, confidences), item.case.labels, specs)
    return rescored
