"""The extraction pipeline: pdf -> document -> budget -> prompt -> engine -> validate & ground -> store.

Batch-first: ``Analyzer.extract`` takes many files, sends every prompt that fits to the engine in one
``generate`` call (vLLM schedules them together), re-asks the invalid ones once in a second call, and
stores each run in its own transaction. Errors are per document: one bad file never sinks the batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from docanalyst import __version__
from docanalyst.budget import (
    BudgetReport,
    answer_schema,
    length_error,
    length_floor,
    measure,
    over_budget_error,
    reserve_for,
)
from docanalyst.config import Settings
from docanalyst.document import Document
from docanalyst.engines import Engine, GenerationRequest, GenerationResult
from docanalyst.errors import (
    BudgetError,
    ConfigError,
    DocanalystError,
    ModelOutputError,
    NoTextError,
    OutputTruncatedError,
    OutputValidationError,
    PartialResultError,
    UngroundedError,
)
from docanalyst.grounding import GroundedField, annotate, ground, summarise
from docanalyst.profiles import EngineProfile, default_profile_name, get_profile
from docanalyst.prompting import BuiltPrompt, PromptTemplate, build_prompt, load_template
from docanalyst.salvage import salvage
from docanalyst.schemas import RESULT_MODELS, schema_hash
from docanalyst.statuses import FLAGGED_STATUSES as FLAGGED_STATUSES  # re-exported: callers import it here
from docanalyst.statuses import Fit, QuoteStatus, RunStatus, Verdict
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store
from docanalyst.tokenization import TokenCounter, estimate_tokenizer, model_tokenizer

EngineFactory = Callable[[EngineProfile, str], Engine]
Progress = Callable[[str, str], None]  # (path, stage)




@dataclass(frozen=True)
class ExtractOptions:
    template: str = "contract"
    profile: str | None = None
    model_path: str | None = None
    password: str | None = None
    allow_yarn: bool = True
    force: bool = False
    seed: int = 0
    # Decoding. Extraction is greedy; the perturbation tests sample (temperature > 0, several seeds) and vary the
    # penalty to take the other paths another processor's numerics would take.
    temperature: float = 0.0
    repetition_penalty: float | None = None  # None: the profile's
    repetition_guard: bool = True  # off: loops run until the schema's bounds end them
    # Stop every answer after this many tokens (a time cap on a slow machine); the complete fields are kept.
    max_output_tokens: int | None = None
    # Stored runs with these statuses answer the same question again without the engine. `extract` reuses
    # only valid results; `batch --resume` also counts flagged ones (greedy decoding would repeat them).
    reuse_statuses: tuple[str, ...] = (RunStatus.OK,)
    # --strict: a value whose quote cannot be found in the document fails the run (status "ungrounded").
    strict: bool = False
    # Reading: OCR of pages that are only images (Tesseract), and the limits of the isolated reader process.
    ocr: bool = True
    ocr_language: str = "eng"
    read_timeout_s: float = 300.0
    read_memory_mb: int = 2048


@dataclass(frozen=True)
class Prepared:
    """A document read, checked and measured, with its prompt: everything before the engine (picklable)."""

    path: str
    document: Document
    profile: str
    model_ref: str
    model_name: str
    budget: BudgetReport
    prompt: BuiltPrompt
    notes: tuple[str, ...] | list[str]
    timings: dict[str, float]


@dataclass
class Outcome:
    """What happened to one document. ``status``: ok, cached, partial, invalid, truncated, ungrounded, failed
    or error."""

    path: str
    status: RunStatus
    document: Document | None = None
    template: PromptTemplate | None = None
    profile: str | None = None
    model: str | None = None
    result: dict[str, Any] | None = None
    fields: list[GroundedField] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    budget: BudgetReport | None = None
    run_id: int | None = None
    error: DocanalystError | None = None
    notes: list[str] = field(default_factory=list)
    question: str | None = None
    missing: list[str] = field(default_factory=list)  # partial runs: the fields the answer did not deliver

    @property
    def ok(self) -> bool:
        return self.status.usable

    def as_json(self) -> dict[str, Any]:
        doc = self.document
        return {
            "document": {
                "sha256": doc.sha256 if doc else None,
                "path": self.path,
                "pages": doc.page_count if doc else None,
                "tokens": self.budget.document_tokens if self.budget else None,
            },
            "template": self.template.name if self.template else None,
            "template_version": self.template.version if self.template else None,
            "question": self.question,
            "profile": self.profile,
            "model": self.model,
            "status": self.status,
            "result": self.result,
            "grounding": summarise(self.fields).as_dict() if self.result is not None else None,
            "usage": self.usage,
            "timings": self.timings,
            "run_id": self.run_id,
            "missing": self.missing,
            "error": str(self.error) if self.error else None,
            "warnings": [*(doc.warnings if doc else ()), *self.notes],
        }


@dataclass
class _Job:
    outcome: Outcome
    document: Document
    template: PromptTemplate
    profile: EngineProfile
    model_ref: str
    model_name: str
    prompt: BuiltPrompt
    schema: dict[str, Any]
    result_model: type[BaseModel]
    max_tokens: int
    started: float
    question: str | None = None
    attempts: int = 0
    raw: str | None = None
    last: GenerationResult | None = None


def default_engine_factory(settings: Settings) -> EngineFactory:
    def build(profile: EngineProfile, model_ref: str) -> Engine:
        from docanalyst.engines import VllmEngine

        return VllmEngine(profile, model_ref, cpu_kv_cache_gib=settings.cpu_kv_cache_gib)

    return build


class Analyzer:
    """Holds the settings, the store and (lazily) one engine; reuse it for every document in a process."""

    def __init__(self, settings: Settings, store: Store | None = None, engine_factory: EngineFactory | None = None):
        self.settings = settings
        self._store = store
        self.engine_factory = engine_factory or default_engine_factory(settings)
        self._engine: Engine | None = None
        self._engine_key: tuple[str, str] | None = None
        self.engine_start_s: float | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.db_url)
        return self._store

    # ---- resolution -------------------------------------------------------------------------
    def resolve_model(self, profile: EngineProfile, model_path: str | None) -> tuple[str, str]:
        """(what vLLM loads, the model name we record)."""
        if model_path:
            folder = Path(model_path).expanduser()
            if not (folder / "config.json").exists():
                raise ConfigError("not a model folder (no config.json)", path=folder)
            return str(folder.resolve()), folder.resolve().name
        local = profile.local_folder
        if local:
            folder = self.settings.models_dir / local
            if not (folder / "config.json").exists():
                raise ConfigError(
                    f"model for profile '{profile.name}' is not installed in {folder}; run: docanalyst models install"
                )
            return str(folder), local
        return profile.model, profile.model

    def tokenizer_for(self, model_ref: str, profile: EngineProfile) -> TokenCounter:
        folder = Path(model_ref)
        if (folder / "tokenizer.json").exists():
            return model_tokenizer(folder)
        cached = _hub_cached_folder(model_ref)
        if cached is not None:
            return model_tokenizer(cached)
        return estimate_tokenizer(profile.estimate_encoding)

    # ---- planning ---------------------------------------------------------------------------
    def load(self, path: str | Path, options: ExtractOptions) -> Document:
        """Read a PDF in a child process bounded in time and memory (see isolation.py)."""
        from docanalyst.isolation import load_pdf_isolated

        return load_pdf_isolated(
            path,
            options.password,
            timeout_s=options.read_timeout_s,
            memory_mb=options.read_memory_mb,
            ocr=options.ocr,
            ocr_language=options.ocr_language,
        )

    def plan(
        self, document: Document, options: ExtractOptions
    ) -> tuple[EngineProfile, str, str, BudgetReport, BuiltPrompt, list[str]]:
        """Choose the profile (switching to the long one if allowed) and build the prompt; raise if too long.

        A document whose length alone proves it cannot fit (budget.length_floor) is refused before it is
        tokenised: exact counting of a text bomb would need gigabytes, and its answer is already known."""
        template = load_template(options.template)
        profile = get_profile(default_profile_name(options.profile or self.settings.profile))
        model_ref, model_name = self.resolve_model(profile, options.model_path)
        tokenizer = self.tokenizer_for(model_ref, profile)
        floor = length_floor(document, template, profile, tokenizer)
        report: BudgetReport | None = None
        if floor is None or floor.fits:
            report, prompt = measure(document, template, profile, tokenizer)
            if report.fits:
                return profile, model_ref, model_name, report, prompt, []

        def too_long(hint: str) -> BudgetError:
            if report is not None:
                return over_budget_error(report, path=document.path, document_id=document.id, hint=hint)
            assert floor is not None
            return length_error(floor, path=document.path, document_id=document.id, hint=hint)

        if not profile.long_fallback:
            raise too_long("use a profile with a longer window (e.g. --profile qwen3-next on a GPU)")
        longer = get_profile(profile.long_fallback)
        long_ref, long_name = self.resolve_model(longer, options.model_path)
        long_tokenizer = self.tokenizer_for(long_ref, longer)
        long_floor = length_floor(document, template, longer, long_tokenizer)
        if long_floor is not None and not long_floor.fits:
            raise length_error(long_floor, path=document.path, document_id=document.id)
        long_report, long_prompt = measure(document, template, longer, long_tokenizer)
        if not long_report.fits:
            raise over_budget_error(long_report, path=document.path, document_id=document.id)
        if not options.allow_yarn:
            raise too_long(f"it fits profile '{longer.name}' (YaRN): rerun with --allow-yarn")
        needs = f"{report.needed:,}" if report is not None else f"at least {too_long('').needed:,}"
        note = (
            f"document needs {needs} tokens, over the {profile.max_model_len:,} window of "
            f"'{profile.name}': using '{longer.name}' (YaRN, window {longer.max_model_len:,})"
        )
        return longer, long_ref, long_name, long_report, long_prompt, [note]

    def budget(self, path: str | Path, options: ExtractOptions) -> tuple[Document, BudgetReport, Verdict]:
        """The `tokens` command: a report for the requested profile, no engine, no error when too long. Counted
        in a reader process (isolation.measure_isolated), bounded like reading: a text bomb's exact count takes
        gigabytes."""
        from docanalyst.isolation import measure_isolated

        measured = measure_isolated(self.settings, path, options)
        return measured.document, measured.report, measured.verdict

    def measure_document(self, document: Document, options: ExtractOptions) -> tuple[BudgetReport, Verdict]:
        """What ``budget`` runs in the reader process: the exact report and the verdict."""
        template = load_template(options.template)
        profile = get_profile(default_profile_name(options.profile or self.settings.profile))
        model_ref, _ = self.resolve_model(profile, options.model_path)
        report, _ = measure(document, template, profile, self.tokenizer_for(model_ref, profile))
        verdict = Verdict(Fit.FITS)
        if not report.fits:
            verdict = Verdict(Fit.TOO_LONG)
            if profile.long_fallback:
                longer = get_profile(profile.long_fallback)
                long_ref, _ = self.resolve_model(longer, options.model_path)
                long_report, _ = measure(document, template, longer, self.tokenizer_for(long_ref, longer))
                if long_report.fits:
                    verdict = Verdict(Fit.NEEDS_LONG, longer.name)
        return report, verdict

    # ---- engine -----------------------------------------------------------------------------
    def engine(self, profile: EngineProfile, model_ref: str) -> Engine:
        key = (profile.name, model_ref)
        if self._engine is not None and self._engine_key == key:
            return self._engine
        if self._engine is not None:  # one big engine at a time
            self._engine.close()
            self._engine = None
        started = time.perf_counter()
        self._engine = self.engine_factory(profile, model_ref)
        self._engine_key = key
        self.engine_start_s = time.perf_counter() - started
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # ---- extraction -------------------------------------------------------------------------
    def prepare(self, path: str | Path, options: ExtractOptions) -> Prepared:
        """Read, check and measure one document (no engine, no database) in a reader process bounded in time
        and memory (isolation.py): this process never tokenises a text it has not seen fit a window."""
        from docanalyst.isolation import prepare_isolated

        return prepare_isolated(self.settings, path, options)

    def prepare_document(self, path: str, document: Document, options: ExtractOptions, read_s: float) -> Prepared:
        """The checks and the budget of a document just read: what a reader process runs after ``load_pdf``."""
        if not any(p.has_text_layer and p.text for p in document.pages):
            raise NoTextError(
                "no text to analyse: no page has a text layer, and OCR recovered none",
                path=path,
                document_id=document.id,
            )
        t0 = time.perf_counter()
        profile, model_ref, model_name, report, prompt, notes = self.plan(document, options)
        timings = {"read_s": round(read_s, 4), "tokenize_s": round(time.perf_counter() - t0, 4)}
        return Prepared(path, document, profile.name, model_ref, model_name, report, prompt, notes, timings)

    def admit(
        self,
        prepared: Prepared,
        options: ExtractOptions,
        outcome: Outcome,
        *,
        template_name: str | None = None,
        question: str | None = None,
    ) -> _Job | None:
        """Fill the outcome from a stored run when this exact question was answered before, else make a job.

        ``template_name``/``question`` ask something else of the same prepared document: the prompt is rebuilt
        with the same document prefix (so the engine's prefix cache serves it)."""
        document = prepared.document
        template = load_template(template_name or options.template)
        profile = get_profile(prepared.profile)
        prompt = prepared.prompt
        if template.name != options.template or question is not None:
            tokenizer = self.tokenizer_for(prepared.model_ref, profile)
            prompt = build_prompt(document, template, tokenizer, question=question)
            if prompt.tokens + reserve_for(template, profile, tokenizer, document.page_count) > profile.max_model_len:
                raise over_budget_error(
                    measure(document, template, profile, tokenizer, question=question)[0],
                    path=document.path,
                    document_id=document.id,
                )
        outcome.document, outcome.template, outcome.profile, outcome.model = (
            document,
            template,
            profile.name,
            prepared.model_name,
        )
        outcome.budget, outcome.notes, outcome.timings = prepared.budget, list(prepared.notes), dict(prepared.timings)
        outcome.question = question
        result_model = RESULT_MODELS[template.name]
        if not options.force:
            cached = self.store.find_cached(
                document.sha256,
                template.name,
                template.version,
                schema_hash(result_model, profile.output_bounds),
                profile.name,
                prepared.model_name,
                statuses=options.reuse_statuses,
                question=question,
            )
            if cached is not None:
                self._fill_from_run(outcome, cached)
                return None
        tokenizer = self.tokenizer_for(prepared.model_ref, profile)
        reserve = reserve_for(template, profile, tokenizer, document.page_count)
        max_tokens = min(reserve, profile.max_model_len - prompt.tokens, options.max_output_tokens or reserve)
        return _Job(
            outcome,
            document,
            template,
            profile,
            prepared.model_ref,
            prepared.model_name,
            prompt,
            answer_schema(template, profile, document.page_count),
            result_model,
            max_tokens,
            time.perf_counter() - prepared.timings.get("read_s", 0.0) - prepared.timings.get("tokenize_s", 0.0),
            question=question,
        )

    def ask(
        self,
        path: str | Path,
        questions: Sequence[str],
        options: ExtractOptions,
        templates: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> list[Outcome]:
        """Several questions and templates about one document. The first request goes alone and fills the
        prefix cache with the document; all the others then go together and are served from it."""
        say = progress or (lambda _path, _stage: None)
        say(str(path), "reading")
        base = replace(options, template="ask") if questions else replace(options, template=templates[0])
        prepared = self.prepare(path, base)
        outcomes: list[Outcome] = []
        jobs: list[_Job] = []
        asks: list[tuple[str | None, str | None]] = [("ask", q) for q in questions] + [(t, None) for t in templates]
        for template_name, question in asks:
            outcome = Outcome(path=str(path), status=RunStatus.ERROR)
            outcomes.append(outcome)
            try:
                job = self.admit(prepared, base, outcome, template_name=template_name, question=question)
            except DocanalystError as exc:
                outcome.error = exc
                continue
            if job is not None:
                jobs.append(job)
        if jobs:
            say(str(path), "generating")
            self.run_jobs(jobs[:1], base)
            self.run_jobs(jobs[1:], base)
        return outcomes

    def extract(
        self, paths: Sequence[str | Path], options: ExtractOptions, progress: Progress | None = None
    ) -> list[Outcome]:
        say = progress or (lambda _path, _stage: None)
        outcomes: list[Outcome] = []
        jobs: list[_Job] = []
        for raw_path in paths:
            outcome = Outcome(path=str(raw_path), status=RunStatus.ERROR)
            outcomes.append(outcome)
            try:
                say(outcome.path, "reading")
                job = self.admit(self.prepare(raw_path, options), options, outcome)
            except DocanalystError as exc:
                outcome.error = exc
                say(outcome.path, "error")
                continue
            if job is None:
                say(outcome.path, "cached")
            else:
                jobs.append(job)
        self.run_jobs(jobs, options, say)
        return outcomes

    def run_jobs(self, jobs: Sequence[_Job], options: ExtractOptions, say: Progress | None = None) -> None:
        """Generate for every job; jobs for one engine go in one call (the engine is built once)."""
        groups: dict[tuple[str, str], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.profile.name, job.model_ref), []).append(job)
        for group in groups.values():
            self._run_group(group, options, say or (lambda _path, _stage: None))

    def _run_group(self, group: list[_Job], options: ExtractOptions, say: Progress) -> None:
        first = group[0]
        for job in group:
            say(job.outcome.path, "starting engine" if self._engine is None else "generating")
        try:
            engine = self.engine(first.profile, first.model_ref)
        except DocanalystError as exc:
            for job in group:
                job.outcome.error = exc
            return
        pending = group
        for attempt in (1, 2):
            for job in pending:
                say(job.outcome.path, "generating" if attempt == 1 else "re-asking")
            requests = [self._request(job, options) for job in pending]
            t0 = time.perf_counter()
            try:
                results = engine.generate(requests)
            except DocanalystError as exc:
                for job in pending:
                    job.outcome.error = exc
                    self._finish(job, RunStatus.FAILED, None, options)
                return
            elapsed = time.perf_counter() - t0
            retry: list[_Job] = []
            for job, result in zip(pending, results, strict=True):
                job.attempts = attempt
                job.last, job.raw = result, result.text
                job.outcome.timings[f"generate_s_{attempt}"] = round(elapsed, 4)
                self._account(job, result)
                if self._settle(job, result, options, last_try=attempt == 2):
                    retry.append(job)
            if not retry:
                return
            pending = retry

    def _request(self, job: _Job, options: ExtractOptions) -> GenerationRequest:
        tokenizer = self.tokenizer_for(job.model_ref, job.profile)
        penalty = options.repetition_penalty
        return GenerationRequest(
            job.prompt.token_ids,
            job.max_tokens,
            job.schema,
            temperature=options.temperature,
            seed=options.seed,
            repetition_penalty=job.profile.repetition_penalty if penalty is None else penalty,
            # only the model's own tokenizer knows the ids the guard needs
            guard=getattr(tokenizer, "guard_ids", None) if options.repetition_guard else None,
        )

    def _settle(self, job: _Job, result: GenerationResult, options: ExtractOptions, *, last_try: bool) -> bool:
        """Finish the job from this answer: ok, partial (complete fields salvaged), truncated or invalid.
        True when it should be asked again (invalid on the first try; a cut-off answer is not re-asked)."""
        where: dict[str, Any] = {"path": job.document.path, "document_id": job.document.id}
        if result.finish_reason == "length":
            problem = (
                f"the model's answer was cut off at max_tokens={job.max_tokens} (finish_reason=length)",
                "the JSON is incomplete",
            )
            return self._salvage(job, options, problem, OutputTruncatedError("; ".join(problem), **where), RunStatus.TRUNCATED)
        try:
            parsed = job.result_model.model_validate(
                json.loads(result.text), context={"page_count": job.document.page_count}
            )
        except (ValueError, ValidationError) as exc:
            message = _validation_message(exc)
            if not last_try:
                job.prompt = build_prompt(
                    job.document,
                    job.template,
                    self.tokenizer_for(job.model_ref, job.profile),
                    reask_error=message,
                    question=job.question,
                )
                job.max_tokens = min(job.max_tokens, job.profile.max_model_len - job.prompt.tokens)
                return True
            problem = ("the model's answer is not valid after one re-ask", message)
            return self._salvage(job, options, problem, OutputValidationError(": ".join(problem), **where), RunStatus.INVALID)
        self._finish(job, RunStatus.OK, parsed.model_dump(mode="json"), options)
        return False

    def _salvage(
        self, job: _Job, options: ExtractOptions, problem: tuple[str, str], error: DocanalystError, status: RunStatus
    ) -> bool:
        """Keep every complete, valid field of a failed answer as a partial run; with none, the plain failure."""
        kept = salvage(job.raw or "", job.result_model, job.document.page_count)
        if kept is None:
            job.outcome.error = error
            self._finish(job, status, None, options)
            return False
        total = len(job.result_model.model_fields)
        job.outcome.missing = list(kept.missing)
        error_type = ModelOutputError if options.strict else PartialResultError  # --strict fails partial runs
        job.outcome.error = error_type(
            f"partial result: {problem[0]}; kept {len(kept.kept)} of {total} fields"
            + (f", missing: {', '.join(kept.missing)}" if kept.missing else "")
            + (" (--strict)" if options.strict else ""),
            path=job.document.path,
            document_id=job.document.id,
        )
        self._finish(job, RunStatus.PARTIAL, kept.result, options)
        return False

    def _account(self, job: _Job, result: GenerationResult) -> None:
        usage = job.outcome.usage
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + result.prompt_tokens
        usage["cached_tokens"] = usage.get("cached_tokens", 0) + result.cached_tokens
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + result.completion_tokens
        if result.ttft_s is not None and "ttft_s" not in job.outcome.timings:
            job.outcome.timings["ttft_s"] = round(result.ttft_s, 4)
        if result.decode_tokens_per_s is not None:
            job.outcome.timings["decode_tok_s"] = round(result.decode_tokens_per_s, 2)

    def _finish(self, job: _Job, status: RunStatus, result: dict[str, Any] | None, options: ExtractOptions) -> None:
        outcome = job.outcome
        outcome.status = status
        if self.engine_start_s is not None:
            outcome.timings["engine_start_s"] = round(self.engine_start_s, 3)
        outcome.timings["total_s"] = round(time.perf_counter() - job.started, 4)
        fields = ground(job.document, result) if result is not None else []
        outcome.fields = fields
        outcome.result = annotate(result, fields) if result is not None else None
        grounding = summarise(fields)
        if status == RunStatus.OK and options.strict and grounding.not_found:
            status = outcome.status = RunStatus.UNGROUNDED
            missing = ", ".join(f.path for f in fields if f.status == QuoteStatus.NOT_FOUND)
            outcome.error = UngroundedError(
                f"{grounding.not_found} of {grounding.quotes} quotes were not found in the document "
                f"(--strict): {missing}",
                path=job.document.path,
                document_id=job.document.id,
            )
        doc = job.document
        run = RunRow(
            document_sha256=doc.sha256,
            template=job.template.name,
            template_version=job.template.version,
            template_sha256=job.template.sha256,
            schema_hash=schema_hash(job.result_model, job.profile.output_bounds),
            profile=job.profile.name,
            model=job.model_name,
            sampling_json=json.dumps(
                {
                    "temperature": options.temperature,
                    "seed": options.seed,
                    "max_tokens": job.max_tokens,
                    "repetition_penalty": job.profile.repetition_penalty
                    if options.repetition_penalty is None
                    else options.repetition_penalty,
                    "repetition_guard": options.repetition_guard and job.profile.repetition_guard,
                    "structured_output": "json_schema",
                    "whitespace": "none",
                }
            ),
            status=status,
            error=str(outcome.error) if outcome.error else None,
            attempts=job.attempts,
            prompt_tokens=outcome.usage.get("prompt_tokens"),
            cached_tokens=outcome.usage.get("cached_tokens"),
            completion_tokens=outcome.usage.get("completion_tokens"),
            ttft_s=outcome.timings.get("ttft_s"),
            total_s=outcome.timings.get("total_s"),
            timings_json=json.dumps(outcome.timings),
            result_json=json.dumps(outcome.result) if outcome.result is not None else None,
            raw_output=job.raw,
            docanalyst_version=__version__,
            question=job.question,
            quotes_total=grounding.quotes if result is not None else None,
            quotes_found=grounding.found if result is not None else None,
            grounding_rate=grounding.rate,
            missing_json=json.dumps(outcome.missing) if status == RunStatus.PARTIAL else None,
        )
        doc_row = DocumentRow(
            sha256=doc.sha256,
            path=doc.path,
            title=doc.title,
            pages=doc.page_count,
            chars=doc.char_count,
            tokens=outcome.budget.document_tokens if outcome.budget else None,
        )
        rows = [
            FieldRow(
                run_id=0,
                path=f.path,
                value=f.value,
                quote=f.quote,
                page=f.page,
                quote_found=f.quote_found,
                quote_status=f.status,
                found_page=f.found_page,
                page_match=f.page_match,
                span_start=f.span_start,
                span_end=f.span_end,
                score=f.score,
            )
            for f in fields
        ]
        outcome.run_id = self.store.save_run(doc_row, run, rows)

    def _fill_from_run(self, outcome: Outcome, run: RunRow) -> None:
        outcome.status = RunStatus.CACHED
        outcome.run_id = run.id
        outcome.result = run.result
        outcome.missing = run.missing
        outcome.usage = {
            "prompt_tokens": run.prompt_tokens or 0,
            "cached_tokens": run.cached_tokens or 0,
            "completion_tokens": run.completion_tokens or 0,
        }
        outcome.timings = run.timings
        outcome.notes.append(
            f"reused run {run.id} (same document, template, schema, profile and model; --force recomputes)"
        )
        loaded = self.store.get_run(run.id) if run.id is not None else None
        if loaded:
            outcome.fields = [
                GroundedField(
                    f.path,
                    f.value,
                    f.quote,
                    f.page,
                    f.quote_status,  # type: ignore[arg-type]
                    f.found_page,
                    f.span_start,
                    f.span_end,
                    f.score,
                )
                for f in loaded[2]
            ]


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        return "; ".join(parts) + more
    return f"not valid JSON ({exc})"


def _hub_cached_folder(model_id: str) -> Path | None:
    """A Hugging Face id already in the local hub cache (never downloads)."""
    if "/" not in model_id or Path(model_id).exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "tokenizer.json")
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None
