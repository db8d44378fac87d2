"""Batch processing of a folder: reading in a pool of reader processes while the engine starts and works.

Reading, checking and token counting run in reader processes (isolation.ReaderPool: bounded in time and memory,
reused across files, answering in JSON). A reader that passes the deadline is killed and replaced, and that file
gets a timeout error, so one pathological PDF cannot stall the batch. Reading runs in a thread beside the
engine: the engine starts as soon as the first document needs it, and documents stream into it in chunks of
``batch_size`` per ``generate`` call while the next ones are read. Every document is committed in its own
transaction as soon as its chunk returns: a stop at any moment (SIGKILL included) loses at most the chunk in
flight, and a re-run skips what is stored.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from docanalyst.config import Settings
from docanalyst.errors import BudgetError, DocanalystError, PdfError
from docanalyst.generation import Job
from docanalyst.isolation import PdfTimeoutError, ReaderPool, Result, prepare_request
from docanalyst.pipeline import Analyzer, ExtractOptions, Outcome, Prepared
from docanalyst.statuses import BatchEvent, RunStatus


class PrepareTimeoutError(DocanalystError):
    exit_code = 3


def find_pdfs(folder: Path, pattern: str = "*.pdf", recursive: bool = False) -> list[Path]:
    """Files matching the pattern (case-insensitive on the extension), sorted for a stable order."""
    if not folder.is_dir():
        raise DocanalystError("not a folder", path=folder)
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    upper = folder.rglob(pattern.upper()) if recursive else folder.glob(pattern.upper())
    return sorted({p for p in [*found, *upper] if p.is_file()})


def prepare_parallel(
    settings: Settings,
    paths: Sequence[Path],
    options: ExtractOptions,
    workers: int = 2,
    timeout_s: float = 60.0,
    *,
    may_start: Callable[[int], bool] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, Prepared | DocanalystError]]:
    """Yield (index, prepared document or error) as files finish, in completion order. ``may_start(index)``
    holds a file back until it returns True (the consumer's back-pressure); ``stop`` ends reading early."""
    tasks = [(index, Path(path), prepare_request(settings, path, options)) for index, path in enumerate(paths)]
    with ReaderPool(workers, timeout_s=timeout_s, memory_mb=options.read_memory_mb, planning=True) as pool:
        for index, result in pool.run(tasks, may_start=may_start, stop=stop):
            if isinstance(result, PdfTimeoutError):
                result = PrepareTimeoutError(f"reading took longer than {timeout_s:g} s: skipped", path=paths[index])
            if not isinstance(result, Prepared | DocanalystError):  # a reader answering another request
                result = PdfError("the reader process answered something that is not a document", path=paths[index])
            yield index, result


class _Reading(threading.Thread):
    """prepare_parallel in a thread, into a queue; it stays at most ``window`` files ahead of the consumer, so
    memory holds a bounded number of documents however long the folder is."""

    def __init__(self, settings: Settings, paths: Sequence[Path], options: ExtractOptions, workers: int,
                 timeout_s: float, window: int) -> None:  # fmt: skip
        super().__init__(name="docanalyst-reading", daemon=True)
        self.args = (settings, paths, options, workers, timeout_s)
        self.window, self.consumed = window, 0
        self.results: queue.Queue[tuple[int, Result] | BaseException | None] = queue.Queue()
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            for item in prepare_parallel(
                *self.args, may_start=lambda i: i < self.consumed + self.window, stop=self.halt.is_set
            ):
                self.results.put(item)
        except BaseException as exc:  # a bug here must reach the batch, not hang it
            self.results.put(exc)
        finally:
            self.results.put(None)

    def close(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def unread_outcome(path: str, error: DocanalystError) -> Outcome:
    """A file that never reached the engine: skipped when it does not fit the window, else an error."""
    return Outcome.failed(path, error, RunStatus.SKIPPED if isinstance(error, BudgetError) else RunStatus.ERROR)


Event = Callable[[BatchEvent, Outcome | None, dict[str, Any]], None]


def run_batch(
    analyzer: Analyzer,
    paths: Sequence[Path],
    options: ExtractOptions,
    *,
    workers: int = 2,
    timeout_s: float = 60.0,
    batch_size: int = 16,
    on_event: Event | None = None,
) -> list[Outcome]:
    """Process every file; ``on_event(kind, outcome, info)`` reports 'read', 'done' and 'engine' events."""
    batch = _Batch(analyzer, paths, options, max(1, batch_size), on_event)
    reading = _Reading(analyzer.settings, paths, options, workers, timeout_s, window=2 * batch.size + 2 * workers)
    reading.start()
    try:
        waiting: dict[int, Result] = {}
        while reading.consumed < len(paths):
            item = reading.results.get()
            if item is None:
                raise DocanalystError("reading stopped before every file was read")
            if isinstance(item, BaseException):
                raise item
            waiting[item[0]] = item[1]
            # Readers finish in any order; admitting in file order makes "the original" of identical files
            # (and the order of engine requests) the same on every run.
            while reading.consumed in waiting:
                batch.admit(reading.consumed, waiting.pop(reading.consumed), unread=len(paths) - reading.consumed)
                reading.consumed += 1
            if len(batch.jobs) >= batch.size:
                batch.generate(batch.size)
        while batch.jobs:
            batch.generate(batch.size)
    finally:
        reading.close()
    batch.settle_copies()
    return [outcome for outcome in batch.outcomes if outcome is not None]


class _Batch:
    """The consumer's side of run_batch: the Analyzer's admit -> generate -> finish loop, fed in file order,
    with the engine started early and identical files analysed once."""

    def __init__(
        self, analyzer: Analyzer, paths: Sequence[Path], options: ExtractOptions, size: int, on_event: Event | None
    ) -> None:
        self.analyzer, self.options, self.size = analyzer, options, size
        self.emit = on_event or (lambda _kind, _outcome, _info: None)
        self.outcomes: list[Outcome | None] = [None] * len(paths)
        self.paths = [str(p) for p in paths]
        self.jobs: list[tuple[int, Job]] = []
        self.first_by_content: dict[str, int] = {}  # two files with the same bytes are analysed once
        self.copies: list[tuple[int, int]] = []  # (copy, original)
        self.engine_error: DocanalystError | None = None
        self.engine_started = False

    def done(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self.emit(BatchEvent.DONE, outcome, {})

    def admit(self, index: int, result: Result, unread: int) -> None:
        if isinstance(result, DocanalystError):
            self.done(index, unread_outcome(self.paths[index], result))
            return
        assert isinstance(result, Prepared)
        original = self.first_by_content.get(result.document.sha256)
        if original is not None:
            self.copies.append((index, original))
            return
        self.first_by_content[result.document.sha256] = index
        try:
            admitted = self.analyzer.admit(result, self.options)
        except DocanalystError as exc:
            self.done(index, Outcome.failed(self.paths[index], exc))
            return
        info = {"pages": result.document.page_count, "tokens": result.budget.prompt_tokens}
        self.emit(BatchEvent.READ, admitted if isinstance(admitted, Outcome) else None, info)
        if isinstance(admitted, Outcome):
            self.done(index, admitted)
            return
        self.jobs.append((index, admitted))
        if not self.engine_started:
            self.start_engine(admitted, len(self.jobs) + unread - 1)

    def start_engine(self, job: Job, documents: int) -> None:
        """Build the engine for the first document that needs one, while the reading thread reads on (a
        resumed batch whose documents are all stored never starts it)."""
        self.engine_started = True
        self.emit(BatchEvent.ENGINE, None, {"documents": documents})
        try:
            self.analyzer.engine(job.plan.profile, job.plan.model_ref)
        except DocanalystError as exc:  # reported on every document that needed it, as generate does
            self.engine_error = exc

    def generate(self, count: int) -> None:
        chunk, self.jobs = self.jobs[:count], self.jobs[count:]
        jobs = [job for _, job in chunk]
        if self.engine_error is not None:
            outcomes = [Outcome.of_job(job, RunStatus.ERROR, error=self.engine_error) for job in jobs]
        else:
            outcomes = self.analyzer.generate(jobs, self.options)
        for (index, _), outcome in zip(chunk, outcomes, strict=True):
            self.done(index, outcome)

    def settle_copies(self) -> None:
        for index, first in self.copies:
            original = self.outcomes[first]
            assert original is not None
            self.done(index, replace(
                original,
                path=self.paths[index],
                status=RunStatus.CACHED if original.ok else original.status,
                usage=dict(original.usage),
                timings={},
                notes=[f"same content as {original.path}: analysed once (run {original.run_id})"],
                question=None,
                missing=[],
            ))  # fmt: skip
