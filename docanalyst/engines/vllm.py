"""The in-process vLLM backend: ``vllm.LLM`` behind the narrow, batch-first ``Engine`` protocol (base.py).

With guard.py, the only module that imports vLLM, and only inside its methods: importing docanalyst stays
fast and GPU-free. The module is named ``vllm`` inside the ``engines`` package; absolute imports (the
default in Python 3) make ``from vllm import LLM`` here find the real vLLM, never this file. Requests carry
token ids, so the raw-vLLM benchmark can send the very same ids to ``VllmEngine.llm``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from docanalyst import quiet
from docanalyst.engines.base import GUARD_CLASS, GUARD_KEY, EngineInfo, GenerationRequest, GenerationResult
from docanalyst.errors import ConfigError, EngineError
from docanalyst.profiles import EngineProfile


def _structured(schema: Mapping[str, Any]) -> dict[str, Any]:
    """SamplingParams kwargs for JSON-schema decoding, across vLLM's API rename."""
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=dict(schema))}
    except ImportError:  # vLLM before the StructuredOutputsParams rename
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=dict(schema))}


class VllmEngine:
    """One ``vllm.LLM`` per process per profile; build it once and reuse it for every document."""

    def __init__(
        self,
        profile: EngineProfile,
        model_path: str | Path,
        *,
        cpu_kv_cache_gib: int = 4,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.profile = profile
        self.model_path = str(model_path)
        self.model_name = Path(self.model_path).name if Path(self.model_path).exists() else self.model_path
        # vLLM reads these in its engine process: they must be set before it starts.
        for key, value in profile.engine_env.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        if profile.device == "cpu":
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kv_cache_gib))
        kwargs = with_overrides(_llm_kwargs(profile, self.model_path), overrides or {})
        self.settings = {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")}
        # safetensors loading bars are chatter on every start (they ignore TQDM_DISABLE): off unless --debug
        kwargs["use_tqdm_on_load"] = not quiet.is_on()
        started = time.perf_counter()
        check_engine_args(overrides or {})
        try:
            from vllm import LLM

            self._llm: Any = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many types; one plain line for the user
            raise EngineError(f"could not start the engine for profile '{profile.name}': {_first_line(exc)}") from exc
        cache = self._llm.llm_engine.vllm_config.cache_config
        self.info = EngineInfo(
            start_s=time.perf_counter() - started,
            kv_cache_tokens=getattr(cache, "kv_cache_size_tokens", None),
            settings=self.settings,
        )

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (benchmarks send raw requests to the very same engine)."""
        return self._llm

    @property
    def max_model_len(self) -> int:
        return int(self._llm.llm_engine.vllm_config.model_config.max_model_len)

    @property
    def hf_config(self) -> Any:
        return self._llm.llm_engine.vllm_config.model_config.hf_config

    def sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams

        extra = _structured(request.json_schema) if request.json_schema is not None else {}
        if request.guard is not None and self.profile.repetition_guard:
            extra["extra_args"] = {GUARD_KEY: dict(request.guard)}
        if request.logprobs:
            # 0: the sampled token's log-probability only (no alternatives); flat: a few lists per request instead
            # of one dict per token, so the cost stays out of generation's way (docs/BENCHMARKS.md).
            extra.update(logprobs=0, flat_logprobs=True)
        return SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k if request.top_k > 0 else -1,
            seed=request.seed,
            repetition_penalty=request.repetition_penalty,
            **extra,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_token_ids)) for r in requests]
        params = [self.sampling_params(r) for r in requests]
        try:
            outputs = self._llm.generate(prompts, params, use_tqdm=False)
        except Exception as exc:
            raise EngineError(f"generation failed: {_first_line(exc)}") from exc
        return [_result(o) for o in outputs]

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        with contextlib.suppress(Exception):  # best effort: the process may be exiting anyway
            llm.llm_engine.engine_core.shutdown()
        self._llm = None


def with_overrides(kwargs: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's ``vllm.LLM`` arguments with the caller's (``--engine-arg``) over them; an object given for
    an object (``hf_overrides``, ``compilation_config``) is merged into the profile's, key by key."""
    merged = dict(kwargs)
    for key, value in overrides.items():
        base = merged.get(key)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def check_engine_args(args: Mapping[str, Any]) -> None:
    """A ConfigError (one line, exit 2) for an engine argument that ``vllm.LLM`` does not take, with the closest
    name it does: a typo in ``--engine-arg`` must not surface as a TypeError deep inside the engine start."""
    if not args:
        return
    import dataclasses
    import difflib
    import inspect

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    names = {f.name for f in dataclasses.fields(EngineArgs)} | set(inspect.signature(LLM.__init__).parameters)
    for key in args:
        if key not in names or key in ("self", "kwargs"):
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown engine argument {key!r} (vllm.LLM does not take it){hint}")


def _llm_kwargs(profile: EngineProfile, model_path: str) -> dict[str, Any]:
    """``vllm.LLM``'s arguments for a profile (before the caller's overrides)."""
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": model_path,
        "max_model_len": profile.max_model_len,
        "enforce_eager": profile.enforce_eager,
        "enable_prefix_caching": profile.enable_prefix_caching,
        "load_format": profile.load_format,
        "seed": 0,
        "disable_log_stats": False,  # per-request metrics (time to first token) need stats on
        "trust_remote_code": False,
    }
    if profile.hf_overrides:
        kwargs["hf_overrides"] = _plain(profile.hf_overrides)
    if profile.mamba_cache_mode:
        kwargs["mamba_cache_mode"] = profile.mamba_cache_mode
    if profile.gpu_memory_utilization is not None and profile.device == "cuda":
        kwargs["gpu_memory_utilization"] = profile.gpu_memory_utilization
    if profile.max_num_seqs:
        kwargs["max_num_seqs"] = profile.max_num_seqs
    if profile.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = profile.max_num_batched_tokens
    if profile.repetition_guard:
        kwargs["logits_processors"] = [GUARD_CLASS]
    # No free whitespace in JSON answers (an engine-wide setting in vLLM): the answer's length is then fixed
    # by the schema's bounds (output_bounds.py), and a small model cannot loop on newlines.
    kwargs["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
    # Log-probabilities as the model gave them (after the grammar's mask, before the repetition penalty and the
    # guard): a confidence must not drop because the guard forced a token or the penalty demoted a repeat.
    # vLLM 0.32's default too; said here so that a change of default cannot change every stored score.
    kwargs["logprobs_mode"] = "raw_logprobs"
    kwargs.update(profile.engine_kwargs)
    return kwargs


def _result(output: Any) -> GenerationResult:
    completion = output.outputs[0]
    metrics = getattr(output, "metrics", None)
    ttft = getattr(metrics, "first_token_latency", None)
    first, last = getattr(metrics, "first_token_ts", 0.0), getattr(metrics, "last_token_ts", 0.0)
    decode = last - first if first and last else None
    texts, logprobs = _token_logprobs(completion.logprobs)
    return GenerationResult(
        text=completion.text,
        finish_reason=completion.finish_reason,
        prompt_tokens=len(output.prompt_token_ids or []),
        cached_tokens=int(output.num_cached_tokens or 0),
        completion_tokens=len(completion.token_ids),
        ttft_s=float(ttft) if ttft is not None else None,
        decode_s=float(decode) if decode is not None else None,
        token_texts=texts,
        token_logprobs=logprobs,
    )


def _token_logprobs(sample: Any) -> tuple[tuple[str, ...] | None, tuple[float, ...] | None]:
    """The sampled token's text and log-probability at each position (vLLM puts the sampled token first at
    every position); (None, None) when the request asked for none."""
    if sample is None:
        return None, None
    if hasattr(sample, "start_indices"):  # FlatLogprobs: parallel lists, one slice per position
        firsts = sample.start_indices
        texts = tuple(sample.decoded_tokens[i] or "" for i in firsts)
        return texts, tuple(float(sample.logprobs[i]) for i in firsts)
    chosen = [next(iter(position.values())) for position in sample]
    return tuple(c.decoded_token or "" for c in chosen), tuple(float(c.logprob) for c in chosen)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
