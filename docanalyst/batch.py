"""Batch processing of a folder: parallel reading with a per-file timeout, then many documents per engine call.

Reading and token counting run in worker processes (spawned, so no engine state is inherited). Each worker
holds one file at a time; a worker that passes the deadline is killed and replaced, and that file gets a
timeout error, so one pathological PDF cannot stall the batch. Inference then goes out in chunks of
``batch_size`` documents per ``generate`` call, and every document is committed in its own transaction as
soon as its chunk returns: a stop at any moment (SIGKILL included) loses at most the chunk in flight, and a
re-run skips what is stored.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from docanalyst.config import Settings
from docanalyst.errors import BudgetError, DocanalystError
from docanalyst.pipeline import Analyzer, ExtractOptions, Outcome, Prepared


class PrepareTimeoutError(DocanalystError):
    exit_code = 3


def find_pdfs(folder: Path, pattern: str = "*.pdf", recursive: bool = False) -> list[Path]:
    """Files matching the pattern (case-insensitive on the extension), sorted for a stable order."""
    if not folder.is_dir():
        raise DocanalystError("not a folder", path=folder)
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    upper = folder.rglob(pattern.upper()) if recursive else folder.glob(pattern.upper())
    return sorted({p for p in [*found, *upper] if p.is_file()})


def _worker(conn: Connection, settings: Settings, options: ExtractOptions) -> None:
    # Ctrl-C reaches the whole terminal group: the batch process decides when its readers stop (lifecycle.py).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    analyzer = Analyzer(settings)
    while True:
        task = conn.recv()
        if task is None:
            return
        index, path = task
        try:
            conn.send((index, analyzer.prepare(path, options)))
        except DocanalystError as exc:
            conn.send((index, exc))
        except Exception as exc:  # a bug or a library crash on a hostile file: report it, keep going
            conn.send((index, DocanalystError(f"could not read: {type(exc).__name__}: {exc}", path=path)))


@dataclass
class _Slot:
    process: Any
    conn: Connection
    task: tuple[int, str] | None = None
    deadline: float = 0.0


def prepare_parallel(
    settings: Settings,
    paths: Sequence[Path],
    options: ExtractOptions,
    workers: int = 2,
    timeout_s: float = 60.0,
) -> Iterator[tuple[int, Prepared | DocanalystError]]:
    """Yield (index, prepared document or error) as files finish, in completion order."""
    ctx = mp.get_context("spawn")
    todo = list(enumerate(str(p) for p in paths))[::-1]
    slots: list[_Slot] = []

    def start() -> _Slot:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, settings, options), daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def feed(slot: _Slot) -> None:
        if todo:
            slot.task = todo.pop()
            slot.deadline = time.monotonic() + timeout_s
            slot.conn.send(slot.task)
        else:
            slot.task = None

    try:
        for _ in range(max(1, min(workers, len(todo)))):
            slot = start()
            slots.append(slot)
            feed(slot)
        while any(s.task is not None for s in slots):
            busy = [s for s in slots if s.task is not None]
            nearest = min(s.deadline for s in busy)
            ready = wait([s.conn for s in busy], timeout=max(0.0, nearest - time.monotonic()))
            for slot in busy:
                assert slot.task is not None
                index, path = slot.task
                if slot.conn in ready:
                    try:
                        _, result = slot.conn.recv()
                    except EOFError:  # the reader died (a crash inside MuPDF, the OOM killer): replace it
                        result = DocanalystError("the reader process crashed on this file", path=path)
                        slot = _replace(slots, slot, start)
                    yield index, result
                    feed(slot)
                elif time.monotonic() >= slot.deadline:
                    slot = _replace(slots, slot, start)
                    yield index, PrepareTimeoutError(f"reading took longer than {timeout_s:g} s: skipped", path=path)
                    feed(slot)
    finally:
        for slot in slots:
            with contextlib.suppress(OSError, ValueError):
                slot.conn.send(None)
        for slot in slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()


def _replace(slots: list[_Slot], old: _Slot, start: Callable[[], _Slot]) -> _Slot:
    """Kill a stuck or dead worker and put a fresh one in its place."""
    old.process.kill()
    old.process.join()
    old.conn.close()
    new = start()
    slots[slots.index(old)] = new
    return new


Event = Callable[[str, Outcome | None, dict[str, Any]], None]


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
    emit = on_event or (lambda _kind, _outcome, _info: None)
    outcomes = [Outcome(path=str(p), status="error") for p in paths]
    jobs = []
    first_by_content: dict[str, Outcome] = {}  # two files with the same bytes are analysed once
    copies: list[tuple[Outcome, Outcome]] = []
    ready: dict[int, Prepared] = {}
    for index, result in prepare_parallel(analyzer.settings, paths, options, workers, timeout_s):
        if isinstance(result, DocanalystError):
            outcomes[index].error = result
            outcomes[index].status = "skipped" if isinstance(result, BudgetError) else "error"
            emit("done", outcomes[index], {})
        else:
            ready[index] = result
    # Readers finish in any order; admitting in file order makes "the original" of identical files (and the
    # order of engine requests) the same on every run.
    for index, prepared in sorted(ready.items()):
        outcome = outcomes[index]
        original = first_by_content.get(prepared.document.sha256)
        if original is not None:
            copies.append((outcome, original))
            continue
        first_by_content[prepared.document.sha256] = outcome
        try:
            job = analyzer.admit(prepared, options, outcome)
        except DocanalystError as exc:
            outcome.error = exc
            emit("done", outcome, {})
            continue
        emit("read", outcome, {"pages": prepared.document.page_count, "tokens": prepared.budget.prompt_tokens})
        if job is None:
            emit("done", outcome, {})
        else:
            jobs.append(job)
    for start in range(0, len(jobs), max(1, batch_size)):
        chunk = jobs[start : start + max(1, batch_size)]
        if analyzer.engine_start_s is None:
            emit("engine", None, {"documents": len(jobs)})
        analyzer.run_jobs(chunk, options)
        for job in chunk:
            emit("done", job.outcome, {})
    for copy, original in copies:
        copy.status = "cached" if original.ok else original.status
        copy.document, copy.template, copy.profile, copy.model = (
            original.document,
            original.template,
            original.profile,
            original.model,
        )
        copy.result, copy.fields, copy.run_id, copy.error = (
            original.result,
            original.fields,
            original.run_id,
            original.error,
        )
        copy.budget, copy.usage = original.budget, dict(original.usage)
        copy.notes = [f"same content as {original.path}: analysed once (run {original.run_id})"]
        emit("done", copy, {})
    return outcomes
