"""Planning: which profile, model and tokenizer a document goes to, its budget and its prompt, as one frozen Plan.

Nothing here starts an engine or touches the database, so it runs in the reader process (isolation.py) next to
the reading. The one rule for long documents lives here, used both by extraction (``plan``) and by the ``tokens``
command (``assess``): a document that does not fit the requested profile goes to that profile's long (YaRN)
fallback when it fits there, and only with ``--allow-yarn``; nothing is ever truncated.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from docanalyst.budget import BudgetReport, LengthFloor, length_error, length_floor, measure, over_budget_error
from docanalyst.config import Settings
from docanalyst.document import Document
from docanalyst.errors import BudgetError, ConfigError, NoTextError
from docanalyst.options import ExtractOptions
from docanalyst.profiles import EngineProfile, default_profile_name, get_profile
from docanalyst.prompting import BuiltPrompt, PromptTemplate, load_template, with_evidence
from docanalyst.statuses import Fit, Verdict
from docanalyst.tokenization import ServerTokenizer, TokenCounter, estimate_tokenizer, model_tokenizer

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
    """(what the engine loads, the model name we record): ``--model`` (a folder; with a server, also the name it
    serves), else the profile's installed folder, else its hub id. The recorded name carries the engine
    arguments that change what the model computes (``recorded_model``), so such a run is never reused for
    another."""
    if model_path:
        folder = Path(model_path).expanduser()
        if (folder / "config.json").exists():
            return str(folder.resolve()), recorded_model(folder.resolve().name, settings, profile)
        if settings.engine_url:  # a server's model, by the name it serves
            return model_path, model_path
        raise ConfigError("not a model folder (no config.json)", path=folder)
    local = profile.local_folder
    if local:
        folder = settings.models_dir / local
        if (folder / "config.json").exists():
            return str(folder), recorded_model(local, settings, profile)
        if settings.engine_url:  # served under its folder name (`docanalyst serve`); nothing needed here
            return local, local
        raise ConfigError(
            f"model for profile '{profile.name}' is not installed in {folder}; run: docanalyst models install"
        )
    return profile.model, recorded_model(profile.model, settings, profile)


def served_model_name(model_ref: str) -> str:
    """The name a server knows this model by: a folder's name (what `docanalyst serve` passes as
    --served-model-name), else the reference itself (a hub id, or a name given with --model)."""
    return Path(model_ref).name if Path(model_ref).is_dir() else model_ref


def requested_model_name(settings: Settings, options: ExtractOptions) -> str:
    """The served name of the model this command asks for, whether or not it is installed here (the CLI looks
    for a `docanalyst serve` that serves it)."""
    if options.model_path:
        folder = Path(options.model_path).expanduser()
        return folder.resolve().name if (folder / "config.json").exists() else options.model_path
    profile = requested_profile(settings, options)
    return profile.local_folder or profile.model


def recorded_model(name: str, settings: Settings, profile: EngineProfile) -> str:
    """The model name a run records: ``name``, plus the engine arguments that change what the model computes
    (``smollm2-135m-instruct [load_format=dummy]``). Arguments that only change speed or memory
    (PERFORMANCE_ARGS) and those equal to the profile's own setting leave it alone; any other does, so an
    argument docanalyst does not know errs on the side of computing again."""
    changed = {
        key: value
        for key, value in sorted(settings.engine_args.items())
        if key not in PERFORMANCE_ARGS and _profile_setting(profile, key) != value
    }
    if not changed:
        return name
    shown = ",".join(f"{key}={_shown(value)}" for key, value in changed.items())
    if len(shown) > 80:  # e.g. a whole hf_overrides object: a digest keeps the name readable and distinct
        shown = "args-" + hashlib.sha256(shown.encode()).hexdigest()[:12]
    return f"{name} [{shown}]"


# Engine arguments that change speed, memory or parallelism, never the tokens a greedy request gets back.
PERFORMANCE_ARGS = frozenset(
    {
        "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "distributed_executor_backend",
        "gpu_memory_utilization", "kv_cache_memory_bytes", "swap_space", "cpu_offload_gb", "max_num_seqs",
        "max_num_batched_tokens", "max_model_len", "enforce_eager", "enable_prefix_caching", "enable_chunked_prefill",
        "prefix_cache_retention_interval", "block_size", "disable_custom_all_reduce", "disable_log_stats",
        "compilation_config", "max_seq_len_to_capture", "max_logprobs", "gdn_prefill_backend", "mamba_cache_mode",
    }
)  # fmt: skip


def _profile_setting(profile: EngineProfile, key: str) -> object:
    if key in profile.engine_kwargs:
        return profile.engine_kwargs[key]
    value = getattr(profile, key, None)
    return dict(value) if isinstance(value, Mapping) else value


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def tokenizer_for(
    settings: Settings, model_ref: str, profile: EngineProfile, *, estimate: bool = False
) -> TokenCounter:
    """The model's own tokenizer: its folder's or the hub cache's, else the server's (``--engine URL``). A prompt
    is never built from an estimate: without any of those, a ConfigError says how to get the tokenizer. Only
    ``estimate`` (the ``tokens`` command) falls back to the profile's labelled estimate."""
    found = local_tokenizer_folder(model_ref)
    if found is not None:
        return model_tokenizer(found)
    if settings.engine_url:
        return _server_tokenizer(settings.engine_url, served_model_name(model_ref), settings.api_key)
    if estimate:
        return estimate_tokenizer(profile.estimate_encoding)
    pull = (
        f"run `docanalyst models pull {profile.name}` (or `--tokenizer-only`), " if model_ref == profile.model else ""
    )
    raise ConfigError(
        f"the tokenizer of {model_ref} is not on this machine: {pull}pass --model FOLDER, "
        "or use a server with --engine URL"
    )


def local_tokenizer_folder(model_ref: str) -> Path | None:
    """The folder holding this model's tokenizer.json on this machine (the model folder, or the hub cache)."""
    folder = Path(model_ref)
    if (folder / "tokenizer.json").exists():
        return folder
    return _hub_cached_folder(model_ref)


@lru_cache(maxsize=8)
def _server_tokenizer(url: str, model: str, api_key: str | None) -> TokenCounter:
    """One per server and model in a process (it asks the server once for its tokenizer's facts)."""
    return ServerTokenizer(url, model, api_key)


def engine_target(settings: Settings, options: ExtractOptions) -> tuple[EngineProfile, str, str] | None:
    """(profile, model reference, recorded model name) of the engine the requested profile's documents go to,
    when its model and tokenizer are at hand; None when planning would stop first. What the CLI starts while
    the documents are read."""
    try:
        profile = requested_profile(settings, options)
        model_ref, model_name = resolve_model(settings, profile, options.model_path)
    except ConfigError:
        return None
    if settings.engine_url is None and local_tokenizer_folder(model_ref) is None:
        return None
    return profile, model_ref, model_name


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
    if settings.engine_url is not None and first.profile.long_fallback:
        # A server runs one engine with one window: the longer profile's plan would ask it for more tokens than it
        # holds (found on the H200: a 260K-token bundle planned for qwen3-next-1m, refused by a qwen3-next serve).
        raise first.error(document, _served_window_hint(settings.engine_url, first.profile.long_fallback))
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


def _served_window_hint(url: str, longer: str) -> str:
    """What to do instead: the server's window is fixed when it starts, so only serving the longer profile helps."""
    return (
        f"the engine at {url} serves this profile's window only: serve the longer one "
        f"(`docanalyst serve --profile {longer}`) and pass --profile {longer}"
    )


def assess(settings: Settings, document: Document, options: ExtractOptions) -> tuple[BudgetReport, Verdict]:
    """The ``tokens`` command: the exact report for the requested profile and the verdict, never an error for
    a long document (it runs in a reader process bounded in memory, so the exact count is safe to take)."""
    template = load_template(options.template)
    requested = requested_profile(settings, options)
    first = _fit(settings, document, template, requested, options, bound_first=False, estimate=True)
    assert first.report is not None
    if first.fits:
        return first.report, Verdict(Fit.FITS)
    longer = _long_fallback(settings, document, template, first.profile, options, estimate=True)
    if longer is not None and longer.fits:
        return first.report, Verdict(Fit.NEEDS_LONG, longer.profile.name)
    return first.report, Verdict(Fit.TOO_LONG)


def _long_fallback(
    settings: Settings,
    document: Document,
    template: PromptTemplate,
    profile: EngineProfile,
    options: ExtractOptions,
    estimate: bool = False,
) -> _Fitting | None:
    """The one long-document rule: the profile's long fallback, measured (None when the profile has none)."""
    if not profile.long_fallback:
        return None
    longer = get_profile(profile.long_fallback)
    return _fit(settings, document, template, longer, options, bound_first=True, estimate=estimate)


def _fit(
    settings: Settings,
    document: Document,
    template: PromptTemplate,
    profile: EngineProfile,
    options: ExtractOptions,
    *,
    bound_first: bool,
    estimate: bool = False,
) -> _Fitting:
    """Measure on one profile; with ``bound_first``, skip the exact count when the length bound already fails;
    with ``estimate`` (``tokens``), a missing tokenizer gives the labelled estimate instead of an error."""
    template = with_evidence(template, options.evidence or profile.evidence)  # the prompt differs per mode
    model_ref, model_name = resolve_model(settings, profile, options.model_path)
    tokenizer = tokenizer_for(settings, model_ref, profile, estimate=estimate)
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
