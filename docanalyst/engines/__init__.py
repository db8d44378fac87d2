"""The engine layer: one protocol (base.py), its backends (vllm.py, fake.py) and the pool that owns them.

Importing this package imports no vLLM or torch: ``VllmEngine`` imports vLLM only when it is built, and
guard.py (which does import them) is loaded by name inside vLLM's engine process, never from here.
"""

from __future__ import annotations

from docanalyst.engines.base import (
    GUARD_CLASS,
    GUARD_KEY,
    Engine,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
)
from docanalyst.engines.fake import FakeEngine
from docanalyst.engines.pool import EngineFactory, EnginePool
from docanalyst.engines.vllm import VllmEngine

__all__ = [
    "GUARD_CLASS",
    "GUARD_KEY",
    "Engine",
    "EngineFactory",
    "EngineInfo",
    "EnginePool",
    "FakeEngine",
    "GenerationRequest",
    "GenerationResult",
    "VllmEngine",
]
