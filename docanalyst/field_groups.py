"""Field groups: a template's fields decoded as several requests, side by side on the document's cached prefix.

Why: decoding one long JSON answer is sequential (one sequence decodes at ~132 tok/s on an H200), while the engine
decodes a batch of sequences in about the time of one. With the fields split into k groups, each request writes
about 1/k of the answer, and the k requests decode together.

How (the pipeline's ``_generate_group`` drives it):
- ``plan_groups``: the split. By default the template's declared ``groups``; ``--field-groups k`` makes k groups
  balanced by each field's worst-case answer tokens (output_bounds.py), cut in declared order, preferring cuts at
  the declared groups' edges; 1 (or a template with one group) keeps today's single request.
- ``expand``: one part per group, each a Job of its own: the same prompt prefix (system + document block, already
  tokenised) with a task suffix listing only the group's fields, and a result model for the subset derived from
  the template's own (so each part validates, bounds, re-asks and salvages exactly like a whole answer).
- ``prefill``: a one-token request of the bare prefix goes first and fills the prefix cache; then every part goes
  in one batch. Not "the first group alone, then the rest": that decodes the first group's whole answer before the
  others start, and on the hybrid Qwen3-Next cache (Gated DeltaNet state checkpoints) the first group's prompt
  leaves a state only at its own end, so the others would resume from the last periodic checkpoint (up to 4,095
  tokens recomputed each); a request that ends exactly at the prefix leaves its state there.
- ``settle``: the parts' endings merged into one Ending of the full result model (the worst status; partial with
  the other groups' fields when some group failed), the usage totalled, and the per-group usage kept for the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from itertools import accumulate, pairwise
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from docanalyst.budget import answer_schema, reserve_for
from docanalyst.engines.base import Engine, GenerationRequest, GenerationResult
from docanalyst.errors import DocanalystError, ModelOutputError, OutputValidationError, PartialResultError
from docanalyst.generation import Ending, Job, with_task
from docanalyst.options import ExtractOptions
from docanalyst.output_bounds import apply_bounds, worst_case_tokens
from docanalyst.profiles import EngineProfile
from docanalyst.prompting import PromptTemplate
from docanalyst.statuses import RunStatus
from docanalyst.templates.models import TEMPLATE_HASH
from docanalyst.tokenization import TokenCounter

Groups = tuple[tuple[str, ...], ...]
# A grouped run's status is its worst group's, in this order (a failed group next to valid ones makes it partial).
SEVERITY = (RunStatus.OK, RunStatus.PARTIAL, RunStatus.TRUNCATED, RunStatus.INVALID, RunStatus.FAILED)


# ---- the split ------------------------------------------------------------------------------------------------
def plan_groups(
    template: PromptTemplate, profile: EngineProfile, tokenizer: TokenCounter, requested: int | None
) -> Groups:
    """The decode groups of ``template`` (empty: one request, as without groups). ``requested`` is
    ``--field-groups`` (None: the profile's default, whose None means the template's declared groups)."""
    if template.spec is None:  # a question: one answer
        return ()
    k = requested if requested is not None else profile.field_groups
    declared = template.spec.field_groups
    if k is None:
        groups = declared
    elif k <= 1:
        return ()
    else:
        order = tuple(name for group in declared for name in group)
        edges = frozenset(accumulate(len(group) for group in declared))
        groups = balanced(order, field_costs(template, profile, tokenizer), k, edges)
    return groups if len(groups) > 1 else ()


def field_costs(template: PromptTemplate, profile: EngineProfile, tokenizer: TokenCounter) -> dict[str, int]:
    """Each field's worst-case answer tokens on this profile (its bounds applied): what a group's decode can cost.
    Measured on the schema before the page bound is patched in, so the split does not depend on the document."""
    costs: dict[str, int] = {}
    for name in template.result_model.model_fields:
        schema = apply_bounds(subset_model(template.result_model, (name,)).model_json_schema(), profile.output_bounds)
        costs[name] = worst_case_tokens(schema, tokenizer)
    return costs


def balanced(order: Sequence[str], costs: Mapping[str, int], k: int, edges: frozenset[int] = frozenset()) -> Groups:
    """``order`` cut into min(k, len) contiguous groups whose largest cost is the smallest possible; among those
    splits, the one with the most cuts at ``edges`` (positions between declared groups). Exact: the smallest
    largest cost is one of the contiguous runs' costs, and the cuts are then chosen by dynamic programming."""
    n = len(order)
    k = max(1, min(k, n))
    sums = [0, *accumulate(costs[name] for name in order)]
    for limit in sorted({sums[b] - sums[a] for a in range(n) for b in range(a + 1, n + 1)}):
        cuts = _cuts(sums, k, limit, edges)
        if cuts is not None:
            bounds = [0, *cuts, n]
            return tuple(tuple(order[a:b]) for a, b in pairwise(bounds))
    raise AssertionError("unreachable: the whole order as one run always fits its own cost")


def _cuts(sums: list[int], k: int, limit: int, edges: frozenset[int]) -> list[int] | None:
    """The k - 1 cut positions that keep every group within ``limit`` with the fewest cuts off ``edges``, or None.
    best[j][i]: (cuts off the edges, last cut) of the first i fields in j groups."""
    n = len(sums) - 1
    best: list[dict[int, tuple[int, int]]] = [{0: (0, 0)}]
    for j in range(1, k + 1):
        row: dict[int, tuple[int, int]] = {}
        for i in range(j, n - (k - j) + 1):
            options = [
                (off + (m > 0 and m not in edges), m)
                for m, (off, _) in best[j - 1].items()
                if m < i and sums[i] - sums[m] <= limit
            ]
            if options:
                row[i] = min(options)
        best.append(row)
    if n not in best[k]:
        return None
    cuts, i = [], n
    for j in range(k, 1, -1):
        i = best[j][i][1]
        cuts.append(i)
    return cuts[::-1]


@lru_cache(maxsize=256)
def subset_model(model: type[BaseModel], names: tuple[str, ...]) -> type[BaseModel]:
    """The template's result model asking only for ``names``: the very same field definitions (leaf models, bounds,
    page check), so a part's answer is one the whole template would accept, field for field."""
    fields: dict[str, Any] = {name: (model.model_fields[name].annotation, model.model_fields[name]) for name in names}
    sub: type[BaseModel] = create_model(model.__name__, __config__=model.model_config, **fields)
    setattr(sub, TEMPLATE_HASH, getattr(model, TEMPLATE_HASH, None))
    return sub


def group_template(template: PromptTemplate, names: tuple[str, ...]) -> PromptTemplate:
    """The template narrowed to one group: its prompt lists only these fields, its result model only holds them."""
    assert template.spec is not None
    return replace(template, spec=template.spec.subset(names), result_model=subset_model(template.result_model, names))


# ---- the requests ---------------------------------------------------------------------------------------------
def expand(jobs: Sequence[Job], options: ExtractOptions) -> list[Job]:
    """What goes to the engine for these jobs: each grouped job's parts (kept in ``job.parts``), the others as
    they are."""
    units: list[Job] = []
    for job in jobs:
        if job.groups:
            job.parts = [_part(job, names, options) for names in job.groups]
            units += job.parts
        else:
            units.append(job)
    return units


def _part(job: Job, names: tuple[str, ...], options: ExtractOptions) -> Job:
    """One group as a Job: the parent's prefix ids with this group's task; it shares the parent's timings."""
    assert job.prompt is not None
    template, profile, pages = group_template(job.template, names), job.plan.profile, job.document.page_count
    prompt = with_task(job.prompt, job.document, template, job.plan.tokenizer)
    reserve = reserve_for(template, profile, job.plan.tokenizer, pages)
    return replace(
        job, template=template, result_model=template.result_model, schema=answer_schema(template, profile, pages),
        max_tokens=min(reserve, profile.max_model_len - prompt.tokens, options.max_output_tokens or reserve),
        prompt=prompt, usage={}, attempts=0, raw=None, last=None, groups=(), parts=[], prefill={},
    )  # fmt: skip


def prefill(engine: Engine, jobs: Sequence[Job], options: ExtractOptions) -> None:
    """One one-token request per grouped job's bare prefix, in one call, before its parts: the parts then find the
    document in the prefix cache. A failure is left to the parts' call, which reports it per document."""
    grouped = [job for job in jobs if job.parts]
    if not grouped:
        return
    requests = [
        GenerationRequest(job.prompt.prefix_ids, 1, None, options.temperature, seed=options.seed, logprobs=False)
        for job in grouped
        if job.prompt is not None
    ]
    started = time.perf_counter()
    try:
        results = engine.generate(requests)
    except DocanalystError:
        return
    elapsed = round(time.perf_counter() - started, 4)
    for job, result in zip(grouped, results, strict=True):
        job.prefill = _usage(result)
        job.timings["prefill_s"] = elapsed
        if result.ttft_s is not None:
            job.timings.setdefault("ttft_s", round(result.ttft_s, 4))


def _usage(result: GenerationResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "cached_tokens": result.cached_tokens,
        "completion_tokens": result.completion_tokens,
    }


# ---- the merge ------------------------------------------------------------------------------------------------
def ending_of(job: Job, endings: Mapping[int, Ending], options: ExtractOptions) -> Ending:
    """The job's ending: its own, or its parts' settled into one."""
    if not job.parts:
        return endings[id(job)]
    return settle(job, [endings[id(part)] for part in job.parts], options)


def settle(job: Job, endings: Sequence[Ending], options: ExtractOptions) -> Ending:
    """Merge the parts' endings into one of the full result model, and total their usage into the job (what the
    run stores: usage totals, per-group usage, one answer text with every part's tokens)."""
    _account(job, endings)
    kept: dict[str, Any] = {}
    missing: list[str] = []
    problems: list[tuple[RunStatus, DocanalystError]] = []
    for number, (part, ending) in enumerate(zip(job.parts, endings, strict=True), start=1):
        names = tuple(part.result_model.model_fields)
        if ending.result is not None:
            kept.update(ending.result)
        else:
            missing += names
        missing += ending.missing
        if ending.status != RunStatus.OK:
            problems.append((ending.status, _in_group(job, number, names, ending)))
    worst = max((e.status for e in endings), key=SEVERITY.index)
    if not kept:
        return Ending(worst, error=next(error for status, error in problems if status == worst))
    where: dict[str, Any] = {"path": job.document.path, "document_id": job.document.id}
    try:
        merged = job.result_model.model_validate(kept, context={"page_count": job.document.page_count})
    except ValidationError as exc:  # each part was valid on its own: a merge cannot break one, but say so
        problem = OutputValidationError(f"the field groups' answers do not merge: {exc.errors()[0]['msg']}", **where)
        return Ending(RunStatus.INVALID, error=problem)
    if worst == RunStatus.OK:
        return Ending(RunStatus.OK, merged.model_dump(mode="json"))
    total = len(job.result_model.model_fields)
    plain = [name for name in missing if not name.endswith(" (cut off)")]
    error_type = ModelOutputError if options.strict else PartialResultError  # --strict fails partial runs
    partial = error_type(
        "partial result: " + "; ".join(error.message for _, error in problems)
        + f"; kept {total - len(plain)} of {total} fields" + (f", missing: {', '.join(missing)}" if missing else "")
        + (" (--strict)" if options.strict else ""),
        **where,
    )  # fmt: skip
    return Ending(RunStatus.PARTIAL, merged.model_dump(mode="json"), partial, tuple(missing))


def _in_group(job: Job, number: int, names: tuple[str, ...], ending: Ending) -> DocanalystError:
    """A group's error, saying which group (the same type: its exit code stays)."""
    where: dict[str, Any] = {"path": job.document.path, "document_id": job.document.id}
    shown = f"field group {number} of {len(job.parts)} ({', '.join(names)})"
    if ending.error is None:
        return ModelOutputError(f"{shown}: {ending.status}", **where)
    return type(ending.error)(f"{shown}: {ending.error.message}", **where)


def _account(job: Job, endings: Sequence[Ending]) -> None:
    """Totals over the prefill and every part, the per-group usage (``job.group_usage``), and one answer: the
    parts' objects joined into one (each part's tokens and log-probabilities in order, for confidence.pack)."""
    totals = dict.fromkeys(("prompt_tokens", "cached_tokens", "completion_tokens"), 0)
    for usage in (job.prefill, *(part.usage for part in job.parts)):
        for name in totals:
            totals[name] += usage.get(name, 0)
    job.usage = totals
    job.attempts = max(part.attempts for part in job.parts)
    job.group_usage = {
        "prefill": dict(job.prefill),
        "groups": [
            {"fields": list(part.result_model.model_fields), "status": str(ending.status), "attempts": part.attempts,
             "max_tokens": part.max_tokens, **{name: part.usage.get(name, 0) for name in totals}}
            for part, ending in zip(job.parts, endings, strict=True)
        ],
    }  # fmt: skip
    job.raw = joined([part.raw or "" for part in job.parts])
    texts: list[str] = []
    logprobs: list[float] = []
    for part in job.parts:
        last = part.last
        if last is None or last.token_texts is None or last.token_logprobs is None:
            texts, logprobs = [], []
            break
        texts += last.token_texts
        logprobs += last.token_logprobs
    job.last = GenerationResult(
        job.raw, None, totals["prompt_tokens"], totals["cached_tokens"], totals["completion_tokens"],
        token_texts=tuple(texts) or None, token_logprobs=tuple(logprobs) or None,
    )  # fmt: skip


def joined(raws: Sequence[str]) -> str:
    """The parts' answers as one JSON object when each is a complete one (what a single answer would have been
    written as), else their texts one per line."""
    try:
        objects = [json.loads(raw) for raw in raws]
    except ValueError:
        return "\n".join(raws)
    if not all(isinstance(o, dict) for o in objects):
        return "\n".join(raws)
    inner = [raw.strip()[1:-1].strip() for raw in raws]
    return "{" + ",".join(part for part in inner if part) + "}"
