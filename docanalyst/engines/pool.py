"""The one owner of engines in a process: the CLI, the web app and the tests all get engines from a pool.

An engine takes seconds to minutes to start and gigabytes to hold, so it is started once, on first use, and
reused for every document after; the pool closes engines, nobody else does (an ``Analyzer`` never closes a
pool it was given). ``keep`` bounds how many stay loaded: starting one more closes the least recently used
first, since two big models rarely fit one GPU (the tests keep two small ones: embedded and tiny Qwen3-Next).
Starting is serialised, so two threads asking for the same engine start it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from docanalyst.config import Settings
from docanalyst.engines.base import Engine
from docanalyst.errors import DocanalystError, EngineError
from docanalyst.profiles import EngineProfile

EngineFactory = Callable[[EngineProfile, str], Engine]
Key = tuple[str, str]  # (profile name, model reference)


def vllm_factory(settings: Settings) -> EngineFactory:
    """The real engine: in-process vLLM (imported only when an engine is built)."""

    def build(profile: EngineProfile, model_ref: str) -> Engine:
        from docanalyst.engines.vllm import VllmEngine

        return VllmEngine(profile, model_ref, cpu_kv_cache_gib=settings.cpu_kv_cache_gib)

    return build


class EnginePool:
    """At most one engine per (profile, model); started on first ``get``, reused after, closed by ``close``."""

    def __init__(self, settings: Settings, factory: EngineFactory | None = None, *, keep: int = 1) -> None:
        self.settings = settings
        self.factory = factory or vllm_factory(settings)
        self.keep = max(1, keep)
        self._engines: dict[Key, Engine] = {}  # in order of use, the least recent first
        self._start_s: dict[Key, float] = {}
        self._lock = threading.Lock()  # the dictionaries
        self._starting = threading.Lock()  # one start at a time (held for the whole start)

    def get(self, profile: EngineProfile, model_ref: str) -> Engine:
        """The engine for this profile and model, started now if it is not loaded. A start that fails raises
        one plain EngineError (or the DocanalystError the backend raised); the next ``get`` tries again."""
        key = (profile.name, model_ref)
        found = self._use(key)
        if found is not None:
            return found
        with self._starting:
            found = self._use(key)  # another thread may have started it while this one waited
            if found is not None:
                return found
            self._make_room()
            started = time.perf_counter()
            engine = self._start(profile, model_ref)
            with self._lock:
                self._engines[key] = engine
                self._start_s[key] = time.perf_counter() - started
            return engine

    def _use(self, key: Key) -> Engine | None:
        with self._lock:
            engine = self._engines.pop(key, None)
            if engine is not None:
                self._engines[key] = engine  # now the most recently used
            return engine

    def _make_room(self) -> None:
        with self._lock:
            surplus = list(self._engines)[: max(0, len(self._engines) - self.keep + 1)]
            old = [self._engines.pop(key) for key in surplus]
        for engine in old:
            engine.close()

    def _start(self, profile: EngineProfile, model_ref: str) -> Engine:
        try:
            return self.factory(profile, model_ref)
        except DocanalystError:
            raise
        except Exception as exc:  # a backend's own exception types: one plain line for the user
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EngineError(f"could not start the engine for profile '{profile.name}': {first}") from exc

    def start_s(self, profile_name: str, model_ref: str) -> float | None:
        """How long that engine took to start (None: not started by this pool)."""
        with self._lock:
            return self._start_s.get((profile_name, model_ref))

    def loaded(self) -> list[tuple[str, str]]:
        """(profile, model) of every loaded engine, the least recently used first."""
        with self._lock:
            return list(self._engines)

    def close(self) -> None:
        """Close every engine (best effort each: one failing to shut down does not keep the others alive)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
