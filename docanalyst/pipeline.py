"""The extraction pipeline: prepare -> admit -> generate -> finish, the one loop behind extract, ask and batch.

- prepare: read, check and measure a PDF in a bounded reader process (isolation.py), planned by planning.py;
- admit: answer from a stored run when this exact question was answered before, else make a Job;
- generate: every job for one engine goes in one ``generate`` call (vLLM schedules them together), the invalid
  answers are re-asked once in a second call (generation.py judges each answer); a job decoded in field groups
  sends one request per group after a one-token prefill of its document (field_groups.py), merged back into one;
- finish: ground and check the result, store the run in its own transaction, build the Outcome.

Errors are per document: one bad file never sinks the batch. Engines come from an EnginePool (engines/pool.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from docanalyst import field_groups, generation, planning
from docanalyst.budget import BudgetReport, answer_schema, measure, over_budget_error, reserve_for
from docanalyst.config import Settings
from docanalyst.document import Document
from docanalyst.engines.base import Engine
from docanalyst.engines.pool import EnginePool
from docanalyst.errors import DocanalystError
from docanalyst.generation import Ending, Job
from docanalyst.options import ExtractOptions as ExtractOptions  # re-exported: callers import it here
from docanalyst.outcome import Outcome as Outcome  # re-exported: callers import it here
from docanalyst.planning import Plan
from docanalyst.planning import Prepared as Prepared  # re-exported: callers import it here
from docanalyst.profiles import EngineProfile, get_profile
from docanalyst.prompting import build_prompt, load_template, with_evidence
from docanalyst.runs import RunRecord, StoredRun
from docanalyst.statuses import FLAGGED_STATUSES as FLAGGED_STATUSES  # re-exported: callers import it here
from docanalyst.statuses import RunStatus, Verdict
from docanalyst.store import Store
from docanalyst.tokenization import TokenCounter

Progress = Callable[[str, str], None]  # (path, stage)


def _quiet(_path: str, _stage: str) -> None:
    pass


Admitted = Job | Outcome  # a job for the engine, or the outcome already known (a stored run, an error)


class Analyzer:
    """The settings, the store and an engine pool; reuse one for every document in a process.

    ``pool``: engines shared with the rest of the process (never closed here). Without one, the Analyzer owns a
    pool of its own (the real vLLM engine) and ``close`` closes it. A caller with its own engine (a test, a
    benchmark) passes ``EnginePool(settings, factory)``: the pool is the one owner of engines."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        pool: EnginePool | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else EnginePool(settings)
        self._engine_key: tuple[str, str] | None = None
        self.engine_start_s: float | None = None  # how long this Analyzer waited for its engine to start

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.db_url)
        return self._store

    # ---- planning (planning.py; no engine, no database) -------------------------------------
    def resolve_model(self, profile: EngineProfile, model_path: str | None) -> tuple[str, str]:
        """(what vLLM loads, the model name we record)."""
        return planning.resolve_model(self.settings, profile, model_path)

    def tokenizer_for(self, model_ref: str, profile: EngineProfile) -> TokenCounter:
        return planning.tokenizer_for(self.settings, model_ref, profile)

    def plan(self, document: Document, options: ExtractOptions) -> Plan:
        """The profile, model, budget and prompt for this document; raises BudgetError when it cannot run."""
        return planning.plan(self.settings, document, options)

    def measure_document(self, document: Document, options: ExtractOptions) -> tuple[BudgetReport, Verdict]:
        """What ``budget`` runs in the reader process: the exact report and the verdict."""
        return planning.assess(self.settings, document, options)

    def budget(self, path: str | Path, options: ExtractOptions) -> tuple[Document, BudgetReport, Verdict]:
        """The `tokens` command: a report for the requested profile, no engine, no error when too long. Counted
        in a reader process (isolation.measure_isolated), bounded like reading: a text bomb's exact count takes
        gigabytes."""
        from docanalyst.isolation import measure_isolated

        measured = measure_isolated(self.settings, path, options)
        return measured.document, measured.report, measured.verdict

    def load(self, path: str | Path, options: ExtractOptions) -> Document:
        """Read a PDF in a child process bounded in time and memory (see isolation.py)."""
        from docanalyst.isolation import load_pdf_isolated

        return load_pdf_isolated(
            path, options.password, timeout_s=options.read_timeout_s, memory_mb=options.read_memory_mb,
            ocr=options.ocr, ocr_language=options.ocr_language, tables=options.tables,
        )  # fmt: skip

    # ---- engine ------------------------------------------------------------------------------
    def engine(self, profile: EngineProfile, model_ref: str) -> Engine:
        """The pool's engine for this profile and model; the first time, how long it took is kept."""
        key = (profile.name, model_ref)
        if key == self._engine_key:
            return self.pool.get(profile, model_ref)
        started = time.perf_counter()
        engine = self.pool.get(profile, model_ref)
        self._engine_key, self.engine_start_s = key, time.perf_counter() - started
        return engine

    def start_engine_early(
        self, paths: Sequence[str | Path], options: ExtractOptions, asks: Sequence[tuple[str, str | None]] = ()
    ) -> None:
        """Start the requested profile's engine in the background while ``paths`` are read (``extract`` and
        ``ask`` with ``early_start``), when one of them will need it: a file that looks like a PDF with a question
        (``asks``: template, question; default the options' template) not stored yet. A document that then needs
        another engine (the long profile) waits for this start and gets its own; ``get`` raises a failed start."""
        target = planning.engine_target(self.settings, options)
        if target is None or (target[0].name, target[1]) in self.pool.loaded():
            return
        profile, model_ref, model_name = target
        try:
            templates = [(load_template(t), q) for t, q in asks or [(options.template, None)]]
            tokenizer = planning.tokenizer_for(self.settings, model_ref, profile)
            split = lambda t: field_groups.plan_groups(t, profile, tokenizer, options.field_groups)  # noqa: E731
            for path in paths:
                keys = generation.file_keys(path, templates, profile, model_name, split)
                if keys and (options.force or not all(self.store.find_run(k, options.reuse_statuses) for k in keys)):
                    self.pool.start_soon(profile, model_ref)
                    return
        except DocanalystError:
            return  # the same error comes back where the document is admitted, with its path

    def close(self) -> None:
        """Close the engines of the Analyzer's own pool (a pool it was given stays open)."""
        if self._owns_pool:
            self.pool.close()
        self._engine_key = None

    # ---- 1. prepare --------------------------------------------------------------------------
    def prepare(self, path: str | Path, options: ExtractOptions) -> Prepared:
        """Read, check and measure one document (no engine, no database) in a reader process bounded in time
        and memory (isolation.py): this process never tokenises a text it has not seen fit a window."""
        from docanalyst.isolation import prepare_isolated

        return prepare_isolated(self.settings, path, options)

    def prepare_document(self, path: str, document: Document, options: ExtractOptions, read_s: float) -> Prepared:
        """The checks and the plan of a document just read (what a reader process runs after ``load_pdf``)."""
        return planning.prepare(self.settings, path, document, options, read_s)

    # ---- 2. admit ----------------------------------------------------------------------------
    def admit(
        self,
        prepared: Prepared,
        options: ExtractOptions,
        *,
        template_name: str | None = None,
        question: str | None = None,
    ) -> Admitted:
        """The stored run's outcome when this exact question was answered before, else a job for the engine.

        ``template_name``/``question`` ask something else of the same prepared document: the prompt is rebuilt
        with the same document prefix (so the engine's prefix cache serves it)."""
        job = self._job(prepared, options, template_name or options.template, question)
        if not options.force:
            stored = self.store.find_run(job.key, statuses=options.reuse_statuses)
            if stored is not None:
                return self._reused(job, stored)
        return job

    def _job(self, prepared: Prepared, options: ExtractOptions, asked: str, question: str | None) -> Job:
        document, profile = prepared.document, get_profile(prepared.profile)
        template = with_evidence(load_template(asked), options.evidence or profile.evidence)  # issue 15, part 3
        tokenizer = planning.tokenizer_for(self.settings, prepared.model_ref, profile)
        reserve = reserve_for(template, profile, tokenizer, document.page_count)
        prompt = prepared.prompt
        if asked != options.template or question is not None:
            prompt = build_prompt(document, template, tokenizer, question=question)
            if prompt.tokens + reserve > profile.max_model_len:
                report = measure(document, template, profile, tokenizer, question=question)[0]
                raise over_budget_error(report, path=document.path, document_id=document.id)
        plan = Plan(profile, prepared.model_ref, prepared.model_name, tokenizer, prepared.budget, prompt,
                    tuple(prepared.notes))  # fmt: skip
        timings = dict(prepared.timings)
        return Job(
            path=prepared.path, document=document, template=template, result_model=template.result_model,
            plan=plan, schema=answer_schema(template, profile, document.page_count),
            max_tokens=min(reserve, profile.max_model_len - prompt.tokens, options.max_output_tokens or reserve),
            started=time.perf_counter() - timings.get("read_s", 0.0) - timings.get("tokenize_s", 0.0),
            timings=timings, question=question, engine=generation.engine_record(self.settings),
            groups=field_groups.plan_groups(template, profile, tokenizer, options.field_groups),
        )  # fmt: skip

    def _reused(self, job: Job, stored: StoredRun) -> Outcome:
        note = f"reused run {stored.id} (same document, template, schema, profile and model; --force recomputes)"
        return replace(
            Outcome.of_job(job, RunStatus.CACHED, run_id=stored.id, result=stored.result, missing=stored.missing,
                           usage=stored.usage, timings=stored.timings, fields=stored.fields,
                           field_groups=stored.field_groups),
            notes=[*job.plan.notes, note],
        )  # fmt: skip

    # ---- 3. generate -------------------------------------------------------------------------
    def generate(self, jobs: Sequence[Job], options: ExtractOptions, say: Progress | None = None) -> list[Outcome]:
        """Every job's outcome, in order. Jobs for one engine go in one call (the engine is started once)."""
        groups: dict[tuple[str, str], list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.plan.profile.name, job.plan.model_ref), []).append(job)
        done: dict[int, Outcome] = {}
        for group in groups.values():
            for job, outcome in zip(group, self._generate_group(group, options, say or _quiet), strict=True):
                done[id(job)] = outcome
        return [done[id(job)] for job in jobs]

    def _generate_group(self, group: list[Job], options: ExtractOptions, say: Progress) -> list[Outcome]:
        first = group[0]
        starting = (first.plan.profile.name, first.plan.model_ref) not in self.pool.loaded()
        for job in group:
            say(job.path, "starting engine" if starting else "generating")
        try:
            engine = self.engine(first.plan.profile, first.plan.model_ref)
        except DocanalystError as exc:  # no run is stored: the question was never put to a model
            return [Outcome.of_job(job, RunStatus.ERROR, error=exc) for job in group]
        units = field_groups.expand(group, options)  # a grouped job's parts stand in for it
        field_groups.prefill(engine, group, options)  # their documents go first, into the prefix cache
        endings = self._attempts(engine, units, options, say)
        return [self.finish(job, field_groups.ending_of(job, endings, options), options) for job in group]

    def _attempts(self, engine: Engine, jobs: list[Job], options: ExtractOptions, say: Progress) -> dict[int, Ending]:
        """Every job's ending by id: all in one call, then the invalid answers re-asked once in a second."""
        endings: dict[int, Ending] = {}
        pending = jobs
        for attempt in (1, 2):
            for job in pending:
                say(job.path, "generating" if attempt == 1 else "re-asking")
            t0 = time.perf_counter()
            try:
                results = engine.generate([generation.request(job, options) for job in pending])
            except DocanalystError as exc:
                endings.update((id(job), Ending(RunStatus.FAILED, error=exc)) for job in pending)
                break
            elapsed = time.perf_counter() - t0
            retry: list[Job] = []
            for job, result in zip(pending, results, strict=True):
                generation.account(job, result, attempt, elapsed)
                ending = generation.judge(job, result, options, last_try=attempt == 2)
                if ending is None:
                    retry.append(job)
                else:
                    endings[id(job)] = ending
            if not retry:
                break
            pending = retry
        return endings

    # ---- 4. finish ---------------------------------------------------------------------------
    def finish(self, job: Job, ending: Ending, options: ExtractOptions) -> Outcome:
        """Ground the result, apply --strict, store the run (its own transaction) and build the outcome."""
        ending, fields = generation.conclude(job, ending, options)
        timings = generation.finish_timings(job, self.engine_start_s)
        record = generation.run_record(job, ending, fields, timings, options)
        run_id = self.keep(record)
        return Outcome.of_job(
            job, ending.status, result=record.result, fields=fields, usage=dict(job.usage), timings=timings,
            run_id=run_id, error=ending.error, missing=list(ending.missing), field_groups=job.group_usage,
        )  # fmt: skip

    def keep(self, record: RunRecord) -> int | None:
        """Store a finished run (its own transaction); its id. An Analyzer that only computes (a Ray replica,
        ray_batch.py) hands its records to the one writer instead and returns None."""
        return self.store.store_run(record)

    # ---- the loop, for the faces -------------------------------------------------------------
    def run(self, admitted: Sequence[Admitted], options: ExtractOptions, say: Progress | None = None) -> list[Outcome]:
        """Generate for the jobs among ``admitted``; every outcome, in the same order."""
        outcomes = iter(self.generate([a for a in admitted if isinstance(a, Job)], options, say))
        return [next(outcomes) if isinstance(a, Job) else a for a in admitted]

    def extract(
        self,
        paths: Sequence[str | Path],
        options: ExtractOptions,
        progress: Progress | None = None,
        *,
        early_start: bool = False,
    ) -> list[Outcome]:
        """Extract the template's fields from every file: all the files that need the engine go in one call.
        ``early_start``: the engine starts while the files are read (``start_engine_early``)."""
        say = progress or _quiet
        if early_start:
            self.start_engine_early(paths, options)
        admitted: list[Admitted] = []
        for path in paths:
            say(str(path), "reading")
            try:
                admitted.append(self.admit(self.prepare(path, options), options))
            except DocanalystError as exc:
                admitted.append(Outcome.failed(path, exc))
                say(str(path), "error")
                continue
            if isinstance(admitted[-1], Outcome):
                say(str(path), "cached")
        return self.run(admitted, options, say)

    def ask(
        self,
        path: str | Path,
        questions: Sequence[str],
        options: ExtractOptions,
        templates: Sequence[str] = (),
        progress: Progress | None = None,
        *,
        early_start: bool = False,
    ) -> list[Outcome]:
        """Several questions and templates about one document. The first request goes alone and fills the
        prefix cache with the document; all the others then go together and are served from it."""
        say = progress or _quiet
        say(str(path), "reading")
        base = replace(options, template="ask") if questions else replace(options, template=templates[0])
        asks: list[tuple[str, str | None]] = [("ask", q) for q in questions] + [(t, None) for t in templates]
        if early_start:
            self.start_engine_early([path], base, asks)
        prepared = self.prepare(path, base)
        admitted: list[Admitted] = []
        for template_name, question in asks:
            try:
                admitted.append(self.admit(prepared, base, template_name=template_name, question=question))
            except DocanalystError as exc:
                admitted.append(Outcome.failed(path, exc))
        jobs = [a for a in admitted if isinstance(a, Job)]
        if not jobs:
            return list(admitted)  # type: ignore[arg-type]  # every one is an Outcome
        say(str(path), "generating")
        outcomes = iter([*self.generate(jobs[:1], base), *self.generate(jobs[1:], base)])
        return [next(outcomes) if isinstance(a, Job) else a for a in admitted]
