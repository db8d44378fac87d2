"""One question on its way through the engine: the request, the judgement of each answer, and the run it makes.

``Job`` is what admission hands the engine side; ``judge`` turns an answer into an ``Ending`` (ok, partial with the
complete fields salvaged, truncated, invalid) or asks for one re-ask; ``conclude`` grounds the result and applies
``--strict``; ``run_record`` is the typed record the store writes. No engine and no database here: the Analyzer
(pipeline.py) sends the requests and stores the records, so this logic is tested with the fake engine alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from docanalyst.confidence import field_confidences, pack
from docanalyst.config import Settings
from docanalyst.document import Document
from docanalyst.engines.base import GenerationRequest, GenerationResult
from docanalyst.errors import (
    DocanalystError,
    ModelOutputError,
    OutputTruncatedError,
    OutputValidationError,
    PartialResultError,
    UngroundedError,
)
from docanalyst.grounding import GroundedField, annotate, ground, summarise
from docanalyst.options import ExtractOptions
from docanalyst.planning import Plan
from docanalyst.profiles import EngineProfile
from docanalyst.prompting import BuiltPrompt, PromptTemplate, build_prompt
from docanalyst.runs import RunKey, RunRecord
from docanalyst.salvage import salvage
from docanalyst.schemas import schema_hash
from docanalyst.statuses import GroundingVerdict, RunStatus
from docanalyst.tokenization import TokenCounter

Groups = tuple[tuple[str, ...], ...]  # field groups: the template's field names, one tuple per request


@dataclass
class Job:
    """One question about one document, admitted for the engine. Mutable on purpose: each attempt replaces the
    prompt (a re-ask) and adds to the usage and timings."""

    path: str
    document: Document
    template: PromptTemplate
    result_model: type[BaseModel]
    plan: Plan
    schema: dict[str, Any]
    max_tokens: int
    started: float  # perf_counter time the document's reading began (the run's total_s counts from it)
    timings: dict[str, float]
    question: str | None = None
    prompt: BuiltPrompt | None = None  # the current prompt: the plan's, or a re-ask's
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    raw: str | None = None
    last: GenerationResult | None = None  # the latest answer (its token log-probabilities give the confidences)
    engine: Mapping[str, Any] = field(default_factory=dict)  # which engine answers (``engine_record``)
    # Field groups (field_groups.py): the split of the template's fields, one request each (empty: one request);
    # the parts sent for them, the one-token prefill's usage, and the per-group usage the run stores.
    groups: tuple[tuple[str, ...], ...] = ()
    parts: list[Job] = field(default_factory=list)
    prefill: dict[str, int] = field(default_factory=dict)
    group_usage: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.prompt is None:
            self.prompt = self.plan.prompt

    @property
    def key(self) -> RunKey:
        return run_key(self.document, self.template, self.result_model, self.plan, self.question, self.groups)


@dataclass(frozen=True)
class Ending:
    """How a job ended before grounding: the validated (or salvaged) result and the error to report."""

    status: RunStatus
    result: dict[str, Any] | None = None
    error: DocanalystError | None = None
    missing: tuple[str, ...] = ()


def run_key(
    document: Document,
    template: PromptTemplate,
    model: type[BaseModel],
    plan: Plan,
    question: str | None,
    groups: Groups = (),
) -> RunKey:
    return key_of(document.sha256, template, model, plan.profile, plan.model_name, question, groups)


def key_of(
    sha256: str,
    template: PromptTemplate,
    model: type[BaseModel],
    profile: EngineProfile,
    model_name: str,
    question: str | None,
    groups: Groups = (),
) -> RunKey:
    """The RunKey of a question about the document with this sha256 (known before the file is read). A run
    decoded in field groups answers with other requests (another split, other prompts): its grouping goes into
    the schema hash, so a 4-group run never answers for the 1-group one (whose hash stays what it always was)."""
    hashed = schema_hash(model, profile.output_bounds)
    if groups:
        grouping = ";".join(",".join(group) for group in groups)
        hashed = hashlib.sha256(f"{hashed}|field_groups:{grouping}".encode()).hexdigest()[:16]
    return RunKey(sha256, template.name, template.version, hashed, profile.name, model_name, question)


def file_keys(
    path: str | Path,
    asks: Sequence[tuple[PromptTemplate, str | None]],
    profile: EngineProfile,
    model_name: str,
    groups_of: Callable[[PromptTemplate], Groups] | None = None,
) -> list[RunKey]:
    """The RunKeys of these questions about the file at ``path``, before it is read (its sha256 is its
    document's id); none when it does not start like a PDF or cannot be read. ``groups_of``: each template's
    field groups (field_groups.plan_groups), which are part of the key."""
    try:
        with open(path, "rb") as fh:
            if b"%PDF" not in fh.read(1024):
                return []
            fh.seek(0)
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return []
    return [
        key_of(sha256, t, t.result_model, profile, model_name, q, groups_of(t) if groups_of else ()) for t, q in asks
    ]


def engine_record(settings: Settings) -> dict[str, Any]:
    """Which engine answers, as a run records it: the backend, the server's base URL, the engine arguments
    (the API key never)."""
    url = settings.engine_url
    return {
        "backend": "server" if url else "in-process",
        "url": url.rstrip("/").removesuffix("/v1") if url else None,
        "args": dict(settings.engine_args),
    }


def request(job: Job, options: ExtractOptions) -> GenerationRequest:
    assert job.prompt is not None
    penalty = options.repetition_penalty
    return GenerationRequest(
        job.prompt.token_ids,
        job.max_tokens,
        job.schema,
        temperature=options.temperature,
        seed=options.seed,
        repetition_penalty=job.plan.profile.repetition_penalty if penalty is None else penalty,
        # only the model's own tokenizer knows the ids the guard needs
        guard=getattr(job.plan.tokenizer, "guard_ids", None) if options.repetition_guard else None,
    )


def account(job: Job, result: GenerationResult, attempt: int, elapsed_s: float) -> None:
    """Add one answer's tokens and times to the job (the call's time is shared by every job in it)."""
    job.attempts, job.raw, job.last = attempt, result.text, result
    job.timings[f"generate_s_{attempt}"] = round(elapsed_s, 4)
    for name, value in (
        ("prompt_tokens", result.prompt_tokens),
        ("cached_tokens", result.cached_tokens),
        ("completion_tokens", result.completion_tokens),
    ):
        job.usage[name] = job.usage.get(name, 0) + value
    if result.ttft_s is not None and "ttft_s" not in job.timings:
        job.timings["ttft_s"] = round(result.ttft_s, 4)
    if result.decode_tokens_per_s is not None:
        job.timings["decode_tok_s"] = round(result.decode_tokens_per_s, 2)


def judge(job: Job, result: GenerationResult, options: ExtractOptions, *, last_try: bool) -> Ending | None:
    """The ending this answer gives the job, or None when it should be asked again (invalid on the first try,
    with the validation error in the new prompt; a cut-off answer is never re-asked)."""
    where: dict[str, Any] = {"path": job.document.path, "document_id": job.document.id}
    if result.finish_reason == "length":
        problem = (
            f"the model's answer was cut off at max_tokens={job.max_tokens} (finish_reason=length)",
            "the JSON is incomplete",
        )
        cut = OutputTruncatedError("; ".join(problem), **where)
        return _salvage(job, options, problem, cut, RunStatus.TRUNCATED)
    try:
        parsed = job.result_model.model_validate(
            json.loads(result.text), context={"page_count": job.document.page_count}
        )
    except (ValueError, ValidationError) as exc:
        message = _validation_message(exc)
        if not last_try:
            _reask(job, message)
            return None
        problem = ("the model's answer is not valid after one re-ask", message)
        invalid = OutputValidationError(": ".join(problem), **where)
        return _salvage(job, options, problem, invalid, RunStatus.INVALID)
    return Ending(RunStatus.OK, parsed.model_dump(mode="json"))


def _reask(job: Job, message: str) -> None:
    """The same document prefix (served from the engine's prefix cache), with the validation error added."""
    assert job.prompt is not None
    prompt = with_task(
        job.prompt, job.document, job.template, job.plan.tokenizer, reask_error=message, question=job.question
    )
    job.prompt, job.max_tokens = prompt, min(job.max_tokens, job.plan.profile.max_model_len - prompt.tokens)


def with_task(
    prompt: BuiltPrompt,
    document: Document,
    template: PromptTemplate,
    tokenizer: TokenCounter,
    *,
    reask_error: str | None = None,
    question: str | None = None,
) -> BuiltPrompt:
    """``prompt``'s prefix, as already tokenised, with another task after it (a re-ask, one field group): the
    prefix does not depend on the task (prompting.py), and tokenising a 233K-token document again costs ~1 s."""
    task = build_prompt(document, template, tokenizer, reask_error=reask_error, document_text="", question=question)
    return BuiltPrompt(prompt.prefix, task.suffix, prompt.prefix_ids, task.suffix_ids)


def _salvage(
    job: Job, options: ExtractOptions, problem: tuple[str, str], error: DocanalystError, status: RunStatus
) -> Ending:
    """Keep every complete, valid field of a failed answer as a partial run; with none, the plain failure."""
    kept = salvage(job.raw or "", job.result_model, job.document.page_count)
    if kept is None:
        return Ending(status, error=error)
    total = len(job.result_model.model_fields)
    error_type = ModelOutputError if options.strict else PartialResultError  # --strict fails partial runs
    partial = error_type(
        f"partial result: {problem[0]}; kept {len(kept.kept)} of {total} fields"
        + (f", missing: {', '.join(kept.missing)}" if kept.missing else "")
        + (" (--strict)" if options.strict else ""),
        path=job.document.path,
        document_id=job.document.id,
    )
    return Ending(RunStatus.PARTIAL, kept.result, partial, tuple(kept.missing))


def conclude(job: Job, ending: Ending, options: ExtractOptions) -> tuple[Ending, list[GroundedField]]:
    """Ground the result's quotes in the document; under ``--strict`` an unverified quote or a verdict other than
    ``grounded`` fails an ok run."""
    if ending.result is None:
        return ending, []
    confidences: dict[str, float] = {}
    for answer in job.parts or [job]:  # a grouped job: each part's answer scores its own fields
        last = answer.last
        if last is not None:
            confidences.update(field_confidences(answer.raw or "", last.token_texts, last.token_logprobs))
    fields = ground(job.document, ending.result, confidences)
    grounding = summarise(fields)
    weak = grounding.verdict is not GroundingVerdict.GROUNDED
    if ending.status == RunStatus.OK and options.strict and (grounding.not_found or weak):
        unverified = ", ".join(f"{f.path} ({f.status})" for f in fields if f.quote and not f.quote_found)
        error = UngroundedError(
            f"{grounding.not_found} of {grounding.quotes} quotes are not evidence for their value; the run's evidence "
            f"is {grounding.verdict} (--strict): {unverified or 'values without quotes'}",
            path=job.document.path,
            document_id=job.document.id,
        )
        ending = replace(ending, status=RunStatus.UNGROUNDED, error=error)
    return ending, fields


def finish_timings(job: Job, engine_start_s: float | None) -> dict[str, float]:
    timings = dict(job.timings)
    if engine_start_s is not None:
        timings["engine_start_s"] = round(engine_start_s, 3)
    timings["total_s"] = round(time.perf_counter() - job.started, 4)
    return timings


def run_record(
    job: Job, ending: Ending, fields: list[GroundedField], timings: dict[str, float], options: ExtractOptions
) -> RunRecord:
    profile = job.plan.profile
    return RunRecord(
        key=job.key,
        document=job.document,
        document_tokens=job.plan.budget.document_tokens,
        template_sha256=job.template.sha256,
        sampling={
            "temperature": options.temperature,
            "seed": options.seed,
            "max_tokens": job.max_tokens,
            "repetition_penalty": profile.repetition_penalty
            if options.repetition_penalty is None
            else options.repetition_penalty,
            "repetition_guard": options.repetition_guard and profile.repetition_guard,
            "structured_output": "json_schema",
            "whitespace": "none",
            "engine": dict(job.engine),
            # field groups (field_groups.py): the one-token prefill's and every group's usage; absent: one request
            **({"field_groups": job.group_usage} if job.group_usage is not None else {}),
        },
        status=ending.status,
        error=str(ending.error) if ending.error else None,
        attempts=job.attempts,
        usage=dict(job.usage),
        timings=timings,
        result=annotate(ending.result, fields) if ending.result is not None else None,
        raw_output=job.raw,
        fields=tuple(fields),
        grounding=summarise(fields),
        missing=ending.missing,
        token_logprobs_json=pack(job.last.token_texts, job.last.token_logprobs) if job.last else None,
    )


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        return "; ".join(parts) + more
    return f"not valid JSON ({exc})"
