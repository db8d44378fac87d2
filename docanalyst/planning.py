"""Planning: which profile, model and tokenizer a document goes to, its budget and its prompt, as one frozen Plan.

Nothing here starts an engine or touches the database, so it runs in the reader process (isolation.py) next to
the reading. The one rule for long documents lives here, used both by extraction (``plan``) and by the ``tokens``
command (``assess``): a document that does not fit the requested profile goes to that profile's long (YaRN)
fallback when it fits there, and only with ``--allow-yarn``; nothing is ever truncated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from docanalyst.budget import BudgetReport, LengthFloor, length_error, length_floor, measure, over_budget_error
from docanalyst.config import Settings
from docanalyst.document import Document
from docanalyst.errors import BudgetError, ConfigError, NoTextError
from docanalyst.options import ExtractOptions
from docanalyst.profiles import EngineProfile, default_profile_name, get_profile
from docanalyst.prompting import BuiltPrompt, PromptTemplate, load_template
from docanalyst.statuses import Fit, Verdict
from docanalyst.tokenization import TokenCounter, estimate_tokenizer, model_tokenizer

NO_LONGER_PROFILE = "use a profile with a longer window (e.g. --profile qwen3-next on a GPU)"


@dataclass(frozen=True)
class Plan:
    """Where a document goes and what is sent: everything the engine side needs, decided before it starts."""

    profile: EngineProfile
    model_ref: str  # what the engine loads (a folder or a hub id)
    model_name: str  # what a run records
    tokenizer: TokenCounter
    budget: BudgetReport
    prompt: BuiltPrompt
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A document read, checked and planned: everything before the engine. Plain data (a Plan's profile and
    tokenizer by name), so a reader process can send it back as JSON (reader_answers.py rebuilds it)."""

    path: str
    document: Document
    profile: str
    model_ref: str
    model_name: str
    budget: BudgetReport
    prompt: BuiltPrompt
    notes: tuple[str, ...] | list[str]
    timings: dict[str, float]


def prepare(settings: Settings, path: str, document: Document, options: ExtractOptions, read_s: float) -> Prepared:
    """The checks and the plan of a document just read: what a reader process runs after ``load_pdf``."""
    if not any(p.has_text_layer and p.text for p in document.pages):
        raise NoTextError(
            "no text to analyse: no page has a text layer, and OCR recovered none", path=path, document_id=document.id
        )
    t0 = time.perf_counter()
    chosen = plan(settings, document, options)
    timings = {"read_s": round(read_s, 4), "tokenize_s": round(time.perf_counter() - t0, 4)}
    return Prepared(
        path, document, chosen.profile.name, chosen.model_ref, chosen.model_name, chosen.budget, chosen.prompt,
        chosen.notes, timings,
    )  # fmt: skip


@dataclass(frozen=True)
class _Fitting:
    """One profile's measurement of one document: a length bound first, the exact count when it can fit."""

    profile: EngineProfile
    model_ref: str
    model_name: str
    tokenizer: TokenCounter
    floor: LengthFloor | None
    report: BudgetReport | None
    prompt: BuiltPrompt | None

    @property
    def fits(self) -> bool:
        return self.report.fits if self.report is not None else self.floor is not None and self.floor.fits

    def error(self, document: Document, hint: str = "") -> BudgetError:
        where = {"path": document.path, "document_id": document.id, "hint": hint}
        if self.report is not None:
            return over_budget_error(self.report, **where)
        assert self.floor is not None
        return length_error(self.floor, **where)

    def plan(self, notes: tuple[str, ...] = ()) -> Plan:
        assert self.report is not None and self.prompt is not None
        return Plan(self.profile, self.model_ref, self.model_name, self.tokenizer, self.report, self.prompt, notes)


def resolve_model(settings: Settings, profile: EngineProfile, model_path: str | None) -> tuple[str, str]:
    """(what vLLM loads, the model name we record): ``--model``, else the profile's installed folder, else its
    hub id."""
    if model_path:
        folder = Path(model_path).expanduser()
        if not (folder / "config.json").exists():
            raise ConfigError("not a model folder (no config.json)", path=folder)
        return str(folder.resolve()), folder.resolve().name
    local = profile.local_folder
    if local:
        folder = settings.models_dir / local
        if not (folder / "config.json").exists():
            raise ConfigError(
                f"model for profile '{profile.name}' is not installed in {folder}; run: docanalyst models install"
            )
        return str(folder), local
    return profile.model, profile.model


def tokenizer_for(model_ref: str, profile: EngineProfile) -> TokenCounter:
    """The model's own tokenizer when it is on disk (exact counts), else the profile's labelled estimate."""
    folder = Path(model_ref)
    if (folder / "tokenizer.json").exists():
        return model_tokenizer(folder)
    cached = _hub_cached_folder(model_ref)
    if cached is not None:
        return model_tokenizer(cached)
    return estimate_tokenizer(profile.estimate_encoding)


def requested_profile(settings: Settings, options: ExtractOptions) -> EngineProfile:
    return get_profile(default_profile_name(options.profile or settings.profile))


def plan(settings: Settings, document: Document, options: ExtractOptions) -> Plan:
    """The plan for extracting ``document``, or the BudgetError that says why it cannot run (with the numbers).

    A document whose length alone proves it cannot fit (budget.length_floor) is refused before it is tokenised:
    exact counting of a text bomb would need gigabytes, and its answer is already known."""
    template = load_template(options.template)
    first = _fit(settings, document, template, requested_profile(settings, options), options, bound_first=True)
    if first.fits:
        return first.plan()
    longer = _long_fallback(settings, document, template, first.profile, options)
    if longer is None:
        raise first.error(document, NO_LONGER_PROFILE)
    if not longer.fits:
        raise longer.error(document)
    if not options.allow_yarn:
        raise first.error(document, f"it fits profile '{longer.profile.name}' (YaRN): rerun with --allow-yarn")
    needs = f"{first.report.needed:,}" if first.report is not None else f"at least {first.error(document).needed:,}"
    note = (
        f"document needs {needs} tokens, over the {first.profile.max_model_len:,} window of "
        f"'{first.profile.name}': using '{longer.profile.name}' (YaRN, window {longer.profile.max_model_len:,})"
    )
    return longer.plan((note,))


def assess(settings: Settings, document: Document, options: ExtractOptions) -> tuple[BudgetReport, Verdict]:
    """The ``tokens`` command: the exact report for the requested profile and the verdict, never an error for
    a long document (it runs in a reader process bounded in memory, so the exact count is safe to take)."""
    template = load_template(options.template)
    first = _fit(settings, document, template, requested_profile(settings, options), options, bound_first=False)
    assert first.report is not None
    if first.fits:
        return first.report, Verdict(Fit.FITS)
    longer = _long_fallback(settings, document, template, first.profile, options)
    if longer is not None and longer.fits:
        return first.report, Verdict(Fit.NEEDS_LONG, longer.profile.name)
    return first.report, Verdict(Fit.TOO_LONG)


def _long_fallback(
    settings: Settings, document: Document, template: PromptTemplate, profile: EngineProfile, options: ExtractOptions
) -> _Fitting | None:
    """The one long-document rule: the profile's long fallback, measured (None when the profile has none)."""
    if not profile.long_fallback:
        return None
    return _fit(settings, document, template, get_profile(profile.long_fallback), options, bound_first=True)


def _fit(
    settings: Settings,
    document: Document,
    template: PromptTemplate,
    profile: EngineProfile,
    options: ExtractOptions,
    *,
    bound_first: bool,
) -> _Fitting:
    """Measure on one profile; with ``bound_first``, skip the exact count when the length bound already fails."""
    model_ref, model_name = resolve_model(settings, profile, options.model_path)
    tokenizer = tokenizer_for(model_ref, profile)
    floor = length_floor(document, template, profile, tokenizer) if bound_first else None
    if floor is not None and not floor.fits:
        return _Fitting(profile, model_ref, model_name, tokenizer, floor, None, None)
    report, prompt = measure(document, template, profile, tokenizer)
    return _Fitting(profile, model_ref, model_name, tokenizer, floor, report, prompt)


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
