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
from collections.abc import Mapping, Sequence
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
from docanalyst.statuses import QuoteStatus, RunStatus


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

    def __post_init__(self) -> None:
        if self.prompt is None:
            self.prompt = self.plan.prompt

    @property
    def key(self) -> RunKey:
        return run_key(self.document, self.template, self.result_model, self.plan, self.question)


@dataclass(frozen=True)
class Ending:
    """How a job ended before grounding: the validated (or salvaged) result and the error to report."""

    status: RunStatus
    result: dict[str, Any] | None = None
    error: DocanalystError | None = None
    missing: tuple[str, ...] = ()


def run_key(
    document: Document, template: PromptTemplate, model: type[BaseModel], plan: Plan, question: str | None
) -> RunKey:
    return key_of(document.sha256, template, model, plan.profile, plan.model_name, question)


def key_of(
    sha256: str,
    template: PromptTemplate,
    model: type[BaseModel],
    profile: EngineProfile,
    model_name: str,
    question: str | None,
) -> RunKey:
    """The RunKey of a question about the document with this sha256 (known before the file is read)."""
    bounds = profile.output_bounds
    return RunKey(
        sha256, template.name, template.version, schema_hash(model, bounds), profile.name, model_name, question
    )


def file_keys(
    path: str | Path, asks: Sequence[tuple[PromptTemplate, str | None]], profile: EngineProfile, model_name: str
) -> list[RunKey]:
    """The RunKeys of these questions about the file at ``path``, before it is read (its sha256 is its
    document's id); none when it does not start like a PDF or cannot be read."""
    try:
        with open(path, "rb") as fh:
            if b"%PDF" not in fh.read(1024):
                return []
            fh.seek(0)
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return []
    return [key_of(sha256, template, template.result_model, profile, model_name, q) for template, q in asks]


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
    prompt = build_prompt(job.document, job.template, job.plan.tokenizer, reask_error=message, question=job.question)
    job.prompt, job.max_tokens = prompt, min(job.max_tokens, job.plan.profile.max_model_len - prompt.tokens)


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
    """Ground the result's quotes in the document; under ``--strict`` a quote not found fails an ok run."""
    if ending.result is None:
        return ending, []
    last = job.last
    confidences = field_confidences(job.raw or "", last.token_texts, last.token_logprobs) if last else {}
    fields = ground(job.document, ending.result, confidences)
    grounding = summarise(fields)
    if ending.status == RunStatus.OK and options.strict and grounding.not_found:
        missing = ", ".join(f.path for f in fields if f.status == QuoteStatus.NOT_FOUND)
        error = UngroundedError(
            f"{grounding.not_found} of {grounding.quotes} quotes were not found in the document (--strict): {missing}",
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
