"""The engine layer: one protocol (base.py), its backends (vllm.py in this process, server.py over HTTP, fake.py)
and the pool that owns them.

Importing this package imports no vLLM, torch or httpx: ``VllmEngine`` imports vLLM only when it is built,
``ServerEngine`` httpx likewise, and guard.py (which does import vLLM) is loaded by name inside vLLM's engine
process, never from here.
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
from docanalyst.engines.server import ServerEngine, server_factory
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
    "ServerEngine",
    "VllmEngine",
    "server_factory",
]
