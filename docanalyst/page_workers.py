"""Reading one long PDF in several processes at once (issue 15): page ranges, workers, and merged notes.

``docanalyst.pdf`` reads the pages; this module holds what needs no PyMuPDF. A long document is cut into short
contiguous page ranges, read by the calling process and by a few worker processes, each with its own document
handle, and put back together in page order, so the Document is the one a serial read gives.

- Workers are fresh Python processes (``python -c``, as with spawn: nothing is inherited but the environment,
  the rlimits and stderr), so any caller can start them: the reader process with its memory cap (each worker
  inherits the cap), a test, a benchmark script. Their entry point imports nothing but ``docanalyst.pdf``.
- Requests and answers are JSON lines, never pickle, as between the reader and the main process: a worker
  handles hostile bytes.
- A worker dies with its parent (``PR_SET_PDEATHSIG``): the reader killed at its time limit, or ended by SIGTERM,
  leaves none behind. The parent also ends them on its way out of ``read_ranges``, whatever happened.
- Ranges are handed out as workers become free (two at a time each, so a worker never waits for the next), and
  the caller reads ranges itself meanwhile: workers starting up (a second or more: PyMuPDF imports its layout
  model) never leave the document unread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from docanalyst.errors import (
    ConfigError,
    DamagedPdfError,
    DocanalystError,
    EmptyDocumentError,
    EncryptedPdfError,
    NotAPdfError,
)

# A document of fewer pages than twice this is read in one process; each further worker needs this many pages.
# Measured (docs/BENCHMARKS.md, "Reading in parallel"): a worker costs ~0.8 s of CPU to start (Python, PyMuPDF
# and its layout model), which plain pages (2-5 ms each) only repay from a few hundred pages on; but a page that
# needs table detection or OCR costs 0.1-1 s, so a 60-page contract can already gain.
MIN_PAGES_PER_WORKER = 24
# Fewer cores than this read serially. On 2 cores the parallel read of the 467-page book took 11.0 s against
# 9.0 s serial (idle machine, 2026-12-03): PyMuPDF's layout model (find_tables) already runs on both cores in
# one process (8.1 s wall for 15.8 s CPU on the book's 40 table candidates), so more processes only add starts.
MIN_CORES_FOR_WORKERS = 3
# Ranges handed out: about this many per process, so that slow pages (tables, OCR) spread out.
RANGES_PER_PROCESS = 6
MAX_RANGE_PAGES = 32
IN_FLIGHT = 2  # ranges queued at a worker
CALLER_READS = True  # False: the caller leaves every range to the workers that started (the tests compare theirs)
# Up to this many pages with an unreadable text layer get one warning each; more are named in one.
_UNREADABLE_SHOWN = 5
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_WORKER = "from docanalyst.pdf import range_worker_main; range_worker_main()"


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(pages: int, requested: int | None = None) -> int:
    """Processes to read a document with, the caller included: 1 reads serially. ``requested`` overrides the
    page threshold (tests, benchmarks), still at most one process per page."""
    if requested is not None:
        return max(1, min(requested, pages))
    cores = available_cores()
    if cores < MIN_CORES_FOR_WORKERS:
        return 1
    return max(1, min(cores, pages // MIN_PAGES_PER_WORKER))


def page_ranges(pages: int, processes: int) -> list[tuple[int, int]]:
    """Contiguous 1-based (first, last) ranges covering every page, in order: one for a serial read."""
    if processes <= 1:
        return [(1, pages)]
    size = max(1, min(MAX_RANGE_PAGES, -(-pages // (processes * RANGES_PER_PROCESS))))
    return [(first, min(first + size - 1, pages)) for first in range(1, pages + 1, size)]


@dataclass
class ReadNotes:
    """What reading pages found beyond their text, in page order: merged across ranges as if read serially."""

    language: str
    ocr_skipped: str | None = None  # why OCR cannot run here, once a page needed it
    notes: list[str] = field(default_factory=list)
    read_by_ocr: list[int] = field(default_factory=list)
    not_read: list[int] = field(default_factory=list)
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)  # page, why, what was done
    tables_stopped: list[list[int]] = field(default_factory=list)  # [first, last] pages read without tables
    mupdf: list[str] = field(default_factory=list)  # MuPDF's warnings while reading the pages

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def merge(self, data: dict[str, Any]) -> None:
        """Append a later range's notes (JSON from a worker, or another ReadNotes' to_json)."""
        self.ocr_skipped = self.ocr_skipped or data["ocr_skipped"]
        self.notes += data["notes"]
        self.read_by_ocr += data["read_by_ocr"]
        self.not_read += data["not_read"]
        self.unreadable += [(int(n), str(why), str(done)) for n, why, done in data["unreadable"]]
        self.mupdf += data["mupdf"]
        for first, last in data["tables_stopped"]:
            if self.tables_stopped and self.tables_stopped[-1][1] == first - 1:
                self.tables_stopped[-1][1] = last
            else:
                self.tables_stopped.append([first, last])

    def warnings(self, page_count: int, table_budget_s: float | None) -> list[str]:
        """The document's warnings about its pages (after MuPDF's own)."""
        notes = list(self.notes)
        if self.read_by_ocr:
            notes.append(f"text on {_pages_phrase(self.read_by_ocr)} recovered by OCR (Tesseract, {self.language})")
        if self.not_read:
            notes.append(f"OCR not run on {_pages_phrase(self.not_read)}: {self.ocr_skipped}")
        if len(self.unreadable) <= _UNREADABLE_SHOWN:
            notes += [f"page {n}: the text layer looks unreadable ({why}); {done}" for n, why, done in self.unreadable]
        else:
            for done in dict.fromkeys(d for _n, _w, d in self.unreadable):
                numbers = [n for n, _w, d in self.unreadable if d == done]
                why = "odd characters or implausible words"
                notes.append(f"{_pages_phrase(numbers)}: the text layer looks unreadable ({why}); {done}")
        if self.tables_stopped:
            pages = ", ".join(f"{first}-{last}" for first, last in self.tables_stopped)
            notes.append(
                f"tables not detected on pages {pages} (read as plain text): table detection stops after "
                f"{table_budget_s:g} s so that reading ends within its time limit"
            )
        return notes


def _pages_phrase(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20]) + (" …" if len(numbers) > 20 else "")
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"


class _Worker:
    """One worker process: request lines in on stdin, one answer line each on stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.queued: list[int] = []  # indices of the ranges sent, oldest first
        self.buffer = bytearray()
        self.ready = self.ended = False  # ready: it said so (its imports are done), so ranges may queue up

    def send(self, index: int, request: dict[str, Any]) -> None:
        self.queued.append(index)
        with contextlib.suppress(OSError):  # a worker that died is found out by reading its answers
            self.stdin.write(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
            self.stdin.flush()

    def pump(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The answers complete so far; at end of file, a crash answer for every range still queued."""
        chunk = os.read(self.stdout.fileno(), 1 << 20)
        self.buffer += chunk
        while (end := self.buffer.find(b"\n")) >= 0:
            line, self.buffer = bytes(self.buffer[:end]), self.buffer[end + 1 :]
            if not self.ready:
                self.ready = True  # its first line says so
                continue
            yield self.queued.pop(0), json.loads(line.decode("ascii"))
        if not chunk:
            self.ended, code = True, self.proc.wait()
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"exit {code}"
            for index in self.queued:
                yield index, {"crashed": name}
            self.queued.clear()

    def close(self) -> None:
        """Kill it: it holds nothing to save (a document open for reading), and one still starting up would
        otherwise finish its imports first."""
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def read_ranges(
    requests: list[dict[str, Any]], processes: int, read_here: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Answer every request, in request order: ``processes - 1`` workers answer some, ``read_here`` the rest.
    An answer holding "error" or "crashed" stops ranges after it from being read: the first one wins, as in a
    serial read. Workers that cannot start leave their share to ``read_here``."""
    answers: dict[int, dict[str, Any]] = {}
    todo = list(range(len(requests)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
    workers: list[_Worker] = []
    selector = selectors.DefaultSelector()
    try:
        with contextlib.suppress(OSError):
            for _ in range(processes - 1):
                workers.append(_Worker(env))
                selector.register(workers[-1].stdout, selectors.EVENT_READ, workers[-1])
        while todo or any(w.queued for w in workers):
            for worker in workers:
                while todo and worker.ready and not worker.ended and len(worker.queued) < IN_FLIGHT:
                    index = todo.pop(0)
                    worker.send(index, requests[index])
            # The caller reads a range only while no worker can take one (they are still starting, or all gone):
            # a caller busy on a range of table pages would leave every worker idle once its queue runs dry.
            caller_turn = bool(todo) and (
                all(w.ended for w in workers) or (CALLER_READS and not any(w.ready and not w.ended for w in workers))
            )
            events = selector.select(0 if caller_turn else 0.05 if todo else None) if workers else []
            for key, _ in events:
                for index, answer in key.data.pump():
                    answers[index] = answer
                    if "error" in answer or "crashed" in answer:
                        todo = [i for i in todo if i < index]
                if key.data.ended:
                    selector.unregister(key.fileobj)
            if caller_turn and not events:
                index = todo.pop(0)
                answers[index] = read_here(requests[index])
                if "error" in answers[index]:
                    todo = [i for i in todo if i < index]
    finally:
        selector.close()
        for worker in workers:
            worker.close()
    first_failed = min((i for i, a in answers.items() if "error" in a or "crashed" in a), default=len(requests))
    return [answers[i] for i in range(min(first_failed + 1, len(requests)))]


def distinct_warnings(warnings: list[str]) -> list[str]:
    """MuPDF's warnings, each once, without its "... repeated N times..." counts: those depend on what one
    process saw before (MuPDF counts a message again only if nothing came between, and warns about a font or
    a CMap once per document handle), so a read in several processes would count otherwise than a serial one."""
    return [w for w in dict.fromkeys(warnings) if not _REPEATED.match(w)]


_REPEATED = re.compile(r"^\.\.\. repeated \d+ times\.\.\.$")


def raise_failure(path: Path, answer: dict[str, Any]) -> None:
    """Raise what a range's first failing page raised (rebuilt from JSON), or the crash of its worker."""
    if "crashed" in answer:
        raise DamagedPdfError(f"the reader process crashed on this file ({answer['crashed']})", path=path)
    if "error" in answer:
        fault = answer["error"]
        cls = _PAGE_ERRORS.get(fault["class"], DamagedPdfError)
        raise cls(str(fault["message"]), path=path, page=int(fault["page"])) from (
            MemoryError() if fault["memory"] else None
        )


_PAGE_ERRORS: dict[str, type[DocanalystError]] = {
    cls.__name__: cls for cls in (DamagedPdfError, EncryptedPdfError, NotAPdfError, EmptyDocumentError, ConfigError)
}


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """A worker's loop: one JSON request per line on stdin, one JSON answer line each on the original stdout,
    until stdin closes. Dies with its parent; Ctrl-C reaches the whole group, so the parent decides."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    out: BinaryIO
    with os.fdopen(answer_fd, "wb") as out:
        out.write(b"{}\n")  # ready: ranges may queue up here now
        out.flush()
        for line in sys.stdin.buffer:
            answer = handle(json.loads(line.decode("ascii")))
            out.write(json.dumps(answer, ensure_ascii=True).encode("ascii") + b"\n")
            out.flush()


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies (a reader or page worker killed at any moment
    must not leave a process reading a hostile file); exit at once if the parent is already gone. Both kinds of
    child call it: reader_process.child_main and the page workers."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)
