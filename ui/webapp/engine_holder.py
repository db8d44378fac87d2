"""The server's one engine: loaded in a background thread so the page stays usable, shared by every browser
session, and used by one run at a time (``run_lock``).

Why a holder around the pool: a Streamlit script reruns on every click, so an Analyzer lives for one rerun; the
engine (tens of seconds to start) must outlive it. The holder keeps the server's ``EnginePool`` (the same code
the command line uses; an Analyzer given a pool never closes it) and adds what a page needs: starting the
engine in the background, and its state to show while it loads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from docanalyst.config import Settings
from docanalyst.engines import Engine, EnginePool
from docanalyst.errors import DocanalystError, EngineError
from docanalyst.profiles import EngineProfile

EngineBuild = Callable[[EngineProfile, str], Engine]

# Tests replace this with a scripted engine for the fast flow tests; None means the pool's real vLLM engine.
ENGINE_FACTORY: EngineBuild | None = None


class EngineHolder:
    """The server's ``EnginePool`` (the same pool code the command line uses), loaded in a background thread;
    ``run_lock`` serialises its use.

    ``ensure`` starts loading and returns at once, so the page stays responsive; ``wait`` blocks until it is ready.
    The pool keeps one engine: switching profile closes the old engine first (one big engine at a time).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = EnginePool(settings, ENGINE_FACTORY, keep=1)
        self.run_lock = threading.RLock()  # re-entrant: the run thread may load the engine
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._ready = False
        self._error: DocanalystError | None = None
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.load_s: float | None = None

    def state(self) -> tuple[str, str | None, float]:
        """(idle | loading | ready | error, profile name, seconds since loading started)."""
        with self._lock:
            name = self._key[0] if self._key else None
            if self._key is None:
                return "idle", None, 0.0
            if self._error is not None:
                return "error", name, 0.0
            if self._ready:
                return "ready", name, self.load_s or 0.0
            return "loading", name, time.monotonic() - self._started

    @property
    def error(self) -> DocanalystError | None:
        return self._error

    def _settled(self, key: tuple[str, str], retry: bool) -> bool:
        return self._key == key and (self._error is None or not retry)

    def ensure(self, profile: EngineProfile, model_ref: str, retry: bool = False) -> None:
        """Start loading this engine unless it is loaded or loading; after a failure, only when ``retry``."""
        key = (profile.name, model_ref)
        with self._lock:
            if self._settled(key, retry):
                return
            loading = self._thread is not None and self._thread.is_alive()
        if loading and self._thread is not None:
            self._thread.join()  # a different engine is still loading: let it finish before closing it
        with self.run_lock:  # never close an engine while a run uses it
            with self._lock:
                if self._settled(key, retry):
                    return
                self._key, self._error, self._ready = key, None, False
                self._started, self.load_s = time.monotonic(), None
            if any(loaded != key for loaded in self.pool.loaded()):
                self.pool.close()  # free the old engine's memory before the new one starts
            thread = threading.Thread(
                target=self._load, args=(profile, model_ref), name="docanalyst-engine", daemon=True
            )
            self._thread = thread
            thread.start()

    def _load(self, profile: EngineProfile, model_ref: str) -> None:
        try:
            self.pool.get(profile, model_ref)  # any failure comes back as one plain DocanalystError
        except DocanalystError as exc:
            with self._lock:
                if self._key == (profile.name, model_ref):
                    self._error = exc
            return
        with self._lock:
            if self._key == (profile.name, model_ref):
                self._ready = True
                self.load_s = time.monotonic() - self._started

    def wait(self, profile: EngineProfile, model_ref: str, timeout: float | None = None) -> Engine:
        self.ensure(profile, model_ref, retry=True)  # a run asks again after a failed start
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            if self._error is not None:
                raise self._error
            if not self._ready:
                raise EngineError(f"the engine for profile '{profile.name}' is still loading")
        return self.pool.get(profile, model_ref)

    def close(self) -> None:
        with self._lock:
            self._key, self._ready = None, False
        self.pool.close()
