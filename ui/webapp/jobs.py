"""Analyses on a worker thread: the script thread polls a job's stages to draw progress, so a long run never
blocks the Streamlit script (which would freeze the page and lose the progress bar)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webapp.engine_holder import EngineHolder

STAGE_WEIGHT = {
    "queued": 0.0,
    "reading": 0.1,
    "starting engine": 0.25,
    "generating": 0.5,
    "re-asking": 0.8,
    "cached": 1.0,
    "error": 1.0,
    "done": 1.0,
}


@dataclass
class RunJob:
    """``Analyzer.extract`` (or ``ask``) on a worker thread; ``stages`` is what each file is doing now."""

    paths: list[str]
    stages: dict[str, str] = field(default_factory=dict)
    outcomes: list[Any] | None = None
    error: BaseException | None = None
    waiting_for_lock: bool = False
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    @property
    def fraction(self) -> float:
        if not self.paths:
            return 1.0
        return sum(STAGE_WEIGHT.get(self.stages.get(p, "queued"), 0.5) for p in self.paths) / len(self.paths)

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


def start_job(
    holder: EngineHolder, paths: list[str], work: Callable[[Callable[[str, str], None]], list[Any]]
) -> RunJob:
    """Run ``work(progress)`` (an Analyzer call) on a worker thread, holding the engine's run lock."""
    job = RunJob(paths=list(paths), stages=dict.fromkeys(paths, "queued"))

    def progress(path: str, stage: str) -> None:
        job.stages[path] = stage

    def target() -> None:
        job.waiting_for_lock = not holder.run_lock.acquire(blocking=False)
        if job.waiting_for_lock:
            holder.run_lock.acquire()
            job.waiting_for_lock = False
        try:
            job.outcomes = work(progress)
            for outcome in job.outcomes:
                job.stages[outcome.path] = "done" if outcome.error is None else "error"
        except BaseException as exc:  # shown as one line; never a traceback in the page
            job.error = exc
        finally:
            holder.run_lock.release()

    job.thread = threading.Thread(target=target, name="docanalyst-run", daemon=True)
    job.thread.start()
    return job


def start_run(holder: EngineHolder, analyzer: Any, options: Any, paths: list[str]) -> RunJob:
    return start_job(holder, paths, lambda progress: analyzer.extract(paths, options, progress=progress))


def start_ask(holder: EngineHolder, analyzer: Any, options: Any, path: str, question: str) -> RunJob:
    return start_job(holder, [path], lambda progress: analyzer.ask(path, [question], options, progress=progress))
