"""Reading a PDF (and counting its tokens) in child processes, bounded in time and memory.

MuPDF is C. A hostile or broken file can make it loop for minutes, ask for gigabytes, or crash the process; a
text bomb (thousands of pages sharing one content stream) turns a 1.5 MB file into tens of millions of
characters, whose exact tokenisation alone needs gigabytes. So both happen in a reader process: its address
space is capped per file (``RLIMIT_AS``: its footprint before the file plus ``memory_mb``), it is killed at
``timeout_s``, and the caller gets a Document or a Prepared (read, checked, measured), or one ``PdfError`` /
``BudgetError`` with a plain reason. The main process only ever holds a document that fits a window.

A ``ReaderPool`` keeps its readers across files (starting Python with PyMuPDF and a tokenizer costs more than
reading a one-page PDF); a reader is killed and replaced at the time limit, and retired when it crashed, ran
out of memory or kept too much. Requests and answers cross the pipes as JSON lines, never pickle: the reader
handles hostile bytes, so nothing it sends back can run code in the parent. Only the child imports PyMuPDF.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from docanalyst.document import Document
from docanalyst.errors import DocanalystError, PdfError
from docanalyst.reader_answers import Measured, PdfTimeoutError, answer_result
from docanalyst.reader_answers import PdfLimitError as PdfLimitError  # re-exported: callers catch them here
from docanalyst.reader_answers import PdfMemoryError as PdfMemoryError
from docanalyst.reader_answers import PdfTextLimitError as PdfTextLimitError

if TYPE_CHECKING:
    from docanalyst.config import Settings
    from docanalyst.options import ExtractOptions
    from docanalyst.planning import Prepared

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 2048
# Table detection stops for the remaining pages once reading has used this share of its time limit (pdf.py).
TABLE_BUDGET_SHARE = 0.5
# The most text a reader hands on: the largest window (1,010,000 tokens, qwen3-next-1m) times the most
# characters one token can cover in any tokenizer we count with (128: cl100k's longest token, the estimate for
# Qwen; the shipped SmolLM2 tokenizer's is 81). A longer text cannot fit any profile, however it tokenises.
MAX_TEXT_CHARS = 1_010_000 * 128
# A reader that kept this much more resident memory than it had after start-up is retired after its answer
# (MuPDF's caches and Python's arenas do not always shrink), as is one that has served this many files.
RETIRE_GROWTH_MB = 512
RETIRE_AFTER_FILES = 500
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_CHILD = "from docanalyst.reader_process import child_main; child_main()"


Result: TypeAlias = "Document | Prepared | Measured | DocanalystError"  # what the pool yields for one file


Task = tuple[int, Path, dict[str, Any]]  # (key, path, request)


def load_pdf_isolated(
    path: str | Path,
    password: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_chars: int = MAX_TEXT_CHARS,
    **options: Any,
) -> Document:
    """``load_pdf(path, password, **options)`` in a child process with a wall-clock limit and a memory cap.

    ``options`` are load_pdf's keyword arguments (``tables``, ``ocr``, ``ocr_language``, ``ocr_dpi``). Raises
    PdfTimeoutError ("reading took longer than N s"), PdfMemoryError ("reading needed more than N MB of
    memory"), PdfTextLimitError (more than ``max_chars`` characters of text), DamagedPdfError when the reader
    crashes, or whatever PdfError/ConfigError load_pdf raised.
    """
    path = Path(path)
    options = {"table_budget_s": timeout_s * TABLE_BUDGET_SHARE, **options}
    request = {"path": str(path), "password": password, "options": options, "max_chars": max_chars}
    result = _one(path, request, timeout_s, memory_mb)
    assert isinstance(result, Document)
    return result


def prepare_isolated(
    settings: Settings, path: str | Path, options: ExtractOptions, *, max_chars: int = MAX_TEXT_CHARS
) -> Prepared:
    """``Analyzer.prepare`` in a reader process: read, check, and count tokens (bounded by the options'
    ``read_timeout_s`` and ``read_memory_mb``). Raises what reading or planning raised (BudgetError included)."""
    path = Path(path)
    from docanalyst.planning import Prepared

    result = _one(
        path, prepare_request(settings, path, options, max_chars), options.read_timeout_s, options.read_memory_mb
    )
    assert isinstance(result, Prepared)
    return result


def measure_isolated(settings: Settings, path: str | Path, options: ExtractOptions) -> Measured:
    """``Analyzer.budget`` in a reader process: exact counts, however long the text, never in this process."""
    request = prepare_request(settings, path, options)
    request["plan"]["measure"] = True
    result = _one(Path(path), request, options.read_timeout_s, options.read_memory_mb)
    assert isinstance(result, Measured)
    return result


def _one(path: Path, request: dict[str, Any], timeout_s: float, memory_mb: int) -> Document | Prepared | Measured:
    with ReaderPool(1, timeout_s=timeout_s, memory_mb=memory_mb, planning="plan" in request) as pool:
        [(_, result)] = list(pool.run([(0, path, request)]))
    if isinstance(result, DocanalystError):
        raise result
    from docanalyst.planning import Prepared  # at run time: a reader that only reads never loads planning

    plan = request.get("plan")
    expected = Document if plan is None else Measured if plan.get("measure") else Prepared
    if not isinstance(result, expected):  # a reader answering another kind of request
        raise PdfError("the reader process answered something that is not a document", path=path)
    return result


def prepare_request(
    settings: Settings, path: str | Path, options: ExtractOptions, max_chars: int = MAX_TEXT_CHARS
) -> dict[str, Any]:
    """The JSON request for reading and planning one file (what ``Analyzer.prepare`` does, in the reader)."""
    plan = {"settings": _settings_json(settings), "options": asdict(options)}
    read = {"ocr": options.ocr, "ocr_language": options.ocr_language, "tables": options.tables,
            "table_budget_s": options.read_timeout_s * TABLE_BUDGET_SHARE}  # fmt: skip
    return {"path": str(path), "password": options.password, "options": read, "max_chars": max_chars, "plan": plan}


class _Reader:
    """One reader process: JSON request lines in on stdin, one JSON answer line each on stdout. Its stderr
    goes to a file (never a pipe nobody drains) whose tail explains a crash."""

    def __init__(self, env: dict[str, str], planning: bool) -> None:
        handle, self.log = tempfile.mkstemp(prefix="docanalyst-reader-", suffix=".log")
        os.close(handle)
        try:
            with open(self.log, "ab") as log:  # O_APPEND: our reads of the file never move its writes
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(os.getpid()), "plan" if planning else "read"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                )
        except OSError as exc:
            os.unlink(self.log)
            raise DocanalystError(f"cannot start the reader process: {exc}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.buffer = bytearray()

    def send(self, request: dict[str, Any]) -> None:
        self.buffer.clear()
        with contextlib.suppress(OSError):  # a reader that died is found out by reading its answer
            self.stdin.write(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
            self.stdin.flush()

    def pump(self) -> tuple[bytes, int | None] | None:
        """Read what is there; (answer, None) once a line is complete, (rest, exit status) if the process ended."""
        chunk = os.read(self.stdout.fileno(), 1 << 20)
        if not chunk:
            return bytes(self.buffer), self.proc.wait()
        self.buffer += chunk
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.buffer[:end])
        self.buffer.clear()
        return line, None

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError), open(self.log, "rb") as fh:
            fh.seek(max(0, os.path.getsize(self.log) - 8192))
            return fh.read().decode("utf-8", "replace")
        return ""

    def close(self, *, kill: bool = False) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()  # an idle reader ends its loop on EOF
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log)


class ReaderPool:
    """Up to ``workers`` reader processes, reused across files. ``run`` yields (key, result) as files finish."""

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        planning: bool = False,
    ):
        """``planning``: the readers will also check and measure (prepare requests), so they import the
        planning before their clock starts."""
        self.workers, self.timeout_s, self.memory_mb, self.planning = max(1, workers), timeout_s, memory_mb, planning
        self.started = 0  # reader processes started so far (a benchmark and the tests look)
        self._idle: list[_Reader] = []
        self._env = dict(os.environ)
        self._env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, self._env.get("PYTHONPATH", "")) if p)

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def _reader(self) -> _Reader:
        if self._idle:
            return self._idle.pop()
        self.started += 1
        return _Reader(self._env, self.planning)

    def run(
        self,
        tasks: Sequence[Task],
        *,
        may_start: Callable[[int], bool] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[int, Result]]:
        """Yield (key, Document | Prepared | error) in completion order, tasks started in order.
        ``may_start(key)``: the next task waits until it is True (a consumer's back-pressure); ``stop``: polled
        at least twice a second, ends the run early. Readers still busy then are killed."""
        todo = deque(tasks)
        busy: dict[_Reader, tuple[Task, float]] = {}  # reader -> (task, when it was sent)
        selector = selectors.DefaultSelector()
        try:
            while todo or busy:
                if stop is not None and stop():
                    return
                while todo and len(busy) < self.workers and (may_start is None or may_start(todo[0][0])):
                    task = todo.popleft()
                    try:
                        reader = self._reader()
                    except DocanalystError as exc:
                        exc.path = str(task[1])
                        yield task[0], exc
                        continue
                    reader.send({**task[2], "memory_mb": self.memory_mb})
                    busy[reader] = (task, time.monotonic())
                    selector.register(reader.stdout, selectors.EVENT_READ, reader)
                # A file's limit runs from its request, a new reader's start included (as with one process a file).
                deadlines = {r: sent + self.timeout_s for r, (_, sent) in busy.items()}
                wait_s = min(0.5, max(0.0, min(deadlines.values(), default=time.monotonic() + 0.05) - time.monotonic()))
                if not busy:  # every next task is held back: wait for the consumer
                    time.sleep(wait_s)
                    continue
                ready = {key.data for key, _ in selector.select(wait_s)}
                for reader in [r for r in busy if r in ready or time.monotonic() >= deadlines[r]]:
                    task = busy[reader][0]
                    done = reader.pump() if reader in ready else None
                    if done is None and time.monotonic() < deadlines[reader]:
                        continue  # part of a long answer
                    del busy[reader]
                    selector.unregister(reader.stdout)
                    if done is None:
                        reader.close(kill=True)
                        yield task[0], PdfTimeoutError(f"reading took longer than {self.timeout_s:g} s", path=task[1])
                    else:
                        yield task[0], self._settle(reader, task[1], *done)
        finally:
            for reader in busy:
                reader.close(kill=True)
            selector.close()

    def _settle(self, reader: _Reader, path: Path, out: bytes, returncode: int | None) -> Result:
        """Turn an answer into a result; keep the reader for the next file unless it ended or asked to retire."""
        try:
            answer = json.loads(out.decode("utf-8"))
        except ValueError:
            answer = None
        err = reader.stderr_tail() if returncode is not None else ""
        try:
            result: Result = answer_result(path, returncode or 0, answer, err, self.memory_mb)
        except DocanalystError as exc:
            result = exc
        keep = returncode is None and isinstance(answer, dict) and not answer.get("retire")
        if keep:
            self._idle.append(reader)
        else:
            reader.close(kill=returncode is None)
        return result


def _settings_json(settings: Settings) -> dict[str, Any]:
    return {f.name: (str(v) if isinstance(v := getattr(settings, f.name), Path) else v) for f in fields(settings)}
