"""What every engine backend speaks: requests, results, the ``Engine`` protocol and start-up facts.

Kept free of vLLM and torch so that the pipeline, the UI and the tests can type against an engine without
importing one (docanalyst must import fast and GPU-free; only ``engines/vllm.py`` touches vLLM, lazily).
Requests carry token ids (we tokenise ourselves, see prompting.py), so what we count is what the engine sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from docanalyst.profiles import EngineProfile

# Loaded by name in vLLM's engine process; the key under which a request carries its settings.
GUARD_CLASS = "docanalyst.engines.guard:RepetitionGuard"
GUARD_KEY = "docanalyst_guard"


@dataclass(frozen=True)
class GenerationRequest:
    prompt_token_ids: Sequence[int]
    max_tokens: int
    json_schema: Mapping[str, Any] | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    repetition_penalty: float = 1.0
    # The repetition guard's settings for this request (engines/guard.py), or None to leave it off.
    guard: Mapping[str, Any] | None = None
    # Return each output token's text and log-probability (confidence.py scores every value from them). On by
    # default; off only to measure what they cost (docs/BENCHMARKS.md).
    logprobs: bool = True


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    ttft_s: float | None = None  # time to first token (arrival -> first token), vLLM's per-request stats
    decode_s: float | None = None  # first token -> last token
    # Per output token, in order: its decoded text and the log-probability the model gave it (None when the
    # request asked for none or the backend has none). One entry per generated token, EOS included.
    token_texts: tuple[str, ...] | None = None
    token_logprobs: tuple[float, ...] | None = None

    @property
    def decode_tokens_per_s(self) -> float | None:
        if not self.decode_s or self.completion_tokens < 2:
            return None
        return (self.completion_tokens - 1) / self.decode_s


class Engine(Protocol):
    profile: EngineProfile
    model_name: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...


@dataclass
class EngineInfo:
    start_s: float
    kv_cache_tokens: int | None
    settings: dict[str, Any] = field(default_factory=dict)
