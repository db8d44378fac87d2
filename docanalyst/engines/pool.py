"""The one owner of engines in a process: the CLI, the web app and the tests all get engines from a pool.

An engine takes seconds to minutes to start and gigabytes to hold, so it is started once, on first use, and
reused for every document after; the pool closes engines, nobody else does (an ``Analyzer`` never closes a
pool it was given). ``keep`` bounds how many stay loaded: starting one more closes the least recently used
first, since two big models rarely fit one GPU (the tests keep two small ones: embedded and tiny Qwen3-Next).
Starting is serialised, so two threads asking for the same engine start it once.

Which engine: the settings say (``default_factory``): a server's (``Settings.engine_url``: `docanalyst serve`, a
team's `vllm serve`) or vLLM in this process with the engine arguments over the profile's (``Settings.engine_args``).
``start_soon`` starts one in the background, so that reading a document overlaps the start (``extract``/``ask``):
``get`` then waits for it and raises the error it met; ``close`` waits for it too (or, told not to, leaves it to
close its engine itself), so no engine outlives the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from docanalyst.config import Settings
from docanalyst.engines.base import Engine
from docanalyst.errors import DocanalystError, EngineError
from docanalyst.profiles import EngineProfile

EngineFactory = Callable[[EngineProfile, str], Engine]
Key = tuple[str, str]  # (profile name, model reference)


def vllm_factory(settings: Settings) -> EngineFactory:
    """The real engine in this process: vLLM (imported only when an engine is built), the settings' engine
    arguments over the profile's."""

    def build(profile: EngineProfile, model_ref: str) -> Engine:
        from docanalyst.engines.vllm import VllmEngine

        return VllmEngine(
            profile, model_ref, cpu_kv_cache_gib=settings.cpu_kv_cache_gib, overrides=dict(settings.engine_args)
        )

    return build


def default_factory(settings: Settings) -> EngineFactory:
    """The engine the settings ask for: the server at ``Settings.engine_url`` (asked for the model by the name it
    serves), else in-process vLLM."""
    if not settings.engine_url:
        return vllm_factory(settings)
    from docanalyst.engines.server import server_factory
    from docanalyst.planning import served_model_name

    remote: EngineFactory = server_factory(settings)

    def build(profile: EngineProfile, model_ref: str) -> Engine:
        return remote(profile, served_model_name(model_ref))

    return build


@dataclass(frozen=True)
class _Early:
    """A start begun by ``start_soon``: which engine, its thread, and an Event set when it has ended."""

    key: Key
    thread: threading.Thread
    done: threading.Event


class EnginePool:
    """At most one engine per (profile, model); started on first ``get``, reused after, closed by ``close``."""

    def __init__(self, settings: Settings, factory: EngineFactory | None = None, *, keep: int = 1) -> None:
        self.settings = settings
        self.factory = factory or default_factory(settings)
        self.keep = max(1, keep)
        self._engines: dict[Key, Engine] = {}  # in order of use, the least recent first
        self._start_s: dict[Key, float] = {}
        self._early: _Early | None = None  # the latest start begun by ``start_soon``
        self._early_error: dict[Key, DocanalystError] = {}  # how it failed, for the next ``get`` to raise
        self._left_behind: threading.Thread | None = None  # a background start that ``close`` did not wait for
        self._lock = threading.Lock()  # the dictionaries
        self._starting = threading.Lock()  # one start at a time (held for the whole start)

    def get(self, profile: EngineProfile, model_ref: str) -> Engine:
        """The engine for this profile and model, started now if it is not loaded. A start that fails raises
        one plain EngineError (or the DocanalystError the backend raised); the next ``get`` tries again."""
        key = (profile.name, model_ref)
        self._await_early(key)
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

    def start_soon(self, profile: EngineProfile, model_ref: str) -> None:
        """Start this engine in a background thread and return at once (the caller reads documents meanwhile).
        Nothing happens when it is loaded or a background start is under way. The thread is not a daemon: a
        process that ends first waits for it (``close`` closes what it started), rather than leave an engine
        half-built in a dying interpreter."""
        key = (profile.name, model_ref)
        with self._lock:
            if key in self._engines or (self._early is not None and not self._early.done.is_set()):
                return
            thread = threading.Thread(target=self._start_early, args=(profile, model_ref), name="docanalyst-engine")
            self._early = _Early(key, thread, threading.Event())
            self._early_error.pop(key, None)
        thread.start()

    def _start_early(self, profile: EngineProfile, model_ref: str) -> None:
        key, me = (profile.name, model_ref), threading.current_thread()
        try:
            engine = self.get(profile, model_ref)
        except DocanalystError as exc:  # kept for the ``get`` that needs this engine: the same error, raised there
            with self._lock:
                self._early_error[key] = exc
            return
        finally:
            with self._lock:
                if self._early is not None and self._early.thread is me:
                    self._early.done.set()
        with self._lock:  # the pool was closed without waiting for this start: nobody will use the engine
            left = self._left_behind is me and self._engines.pop(key, None) is engine
        if left:
            engine.close()

    def _await_early(self, key: Key | None) -> None:
        """Wait for a background start (of ``key``'s engine; of any when None); raise the error it met. (An Event,
        not ``Thread.join``: a join cut short by a signal marks a running thread as ended, bpo-45274.)"""
        with self._lock:
            early = self._early
        if early is None or early.thread is threading.current_thread() or (key is not None and early.key != key):
            return
        early.done.wait()
        if key is not None:
            with self._lock:
                failed = self._early_error.pop(key, None)
            if failed is not None:
                raise failed

    def start_under_way(self, wait_s: float = 0.0) -> bool:
        """Whether a background start is still running (after waiting up to ``wait_s`` for it to end)."""
        with self._lock:
            early = self._early
        if early is None or early.thread is threading.current_thread():
            return False
        return not early.done.wait(wait_s)

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

    def close(self, *, wait: bool = True) -> bool:
        """Close every engine (best effort each: one failing to shut down does not keep the others alive), after
        a background start still under way has ended. ``wait=False`` leaves that start behind (a process about
        to end: stopped by a signal, or done without needing it); its engine is closed when it is built, should
        the process live that long. Returns whether a start was left behind."""
        if wait:
            self._await_early(None)
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            early = self._early.thread if self._early is not None and not self._early.done.is_set() else None
            self._left_behind = early
        for engine in engines:
            engine.close()
        return early is not None

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
