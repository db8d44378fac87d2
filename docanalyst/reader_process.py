"""The reader process behind ``docanalyst.isolation``: one JSON request per line in, one JSON answer out.

It reads a file with ``docanalyst.pdf`` (and, for a prepare request, checks and measures it with
``docanalyst.planning``, as the pipeline would) under an address-space cap set afresh for every file, and
answers in JSON only.
It retires itself after running out of memory, after keeping much more memory than it started with, or after
many files; the parent (isolation.ReaderPool) then starts a fresh one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docanalyst.errors import BudgetError, DocanalystError
from docanalyst.isolation import MAX_TEXT_CHARS, RETIRE_AFTER_FILES, RETIRE_GROWTH_MB
from docanalyst.page_workers import die_with_parent
from docanalyst.reader_answers import PHASE, PdfTextLimitError

if TYPE_CHECKING:
    from docanalyst.config import Settings


def _status_kb(field: str) -> int:
    """A size from /proc/self/status in kB (Linux), 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _footprint_bytes() -> int:
    """This process's current address-space size (Linux), 0 where unknown."""
    return _status_kb("VmSize") * 1024


def cap_memory(memory_mb: int) -> bool:
    """Cap this process's address space at its current size plus ``memory_mb`` (soft limit only, so it can be
    lifted again). Returns False where the platform offers no such cap."""
    try:
        import resource
    except ImportError:  # Windows
        return False
    base = _footprint_bytes()
    if base == 0:
        return False
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = base + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return True


def _uncap_memory() -> None:
    try:
        import resource
    except ImportError:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def child_main() -> None:
    """The reader process: one JSON request per line on stdin, one JSON answer line each on the original
    stdout, until stdin closes or the reader retires itself."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())  # before the slow imports
    import docanalyst.pdf  # before the baseline below is taken

    if sys.argv[2:3] == ["plan"]:
        import docanalyst.planning  # noqa: F401

    baseline_kb, served = _status_kb("VmRSS"), 0
    with os.fdopen(answer_fd, "wb") as out:
        for line in sys.stdin.buffer:
            request = json.loads(line.decode("ascii"))
            answer = _serve(request)
            served += 1
            grown = _status_kb("VmRSS") - baseline_kb > RETIRE_GROWTH_MB * 1024
            if answer["kind"] == "memory" or grown or served >= RETIRE_AFTER_FILES:
                answer["retire"] = True
            out.write(json.dumps(answer, ensure_ascii=True).encode("ascii") + b"\n")
            out.flush()
            if answer.get("retire"):
                return


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    """Read (and, for a prepare request, check and measure) one file under the memory cap; always an answer."""
    from docanalyst.pdf import out_of_memory

    phase = ["reading"]
    try:
        cap_memory(int(request["memory_mb"]))
        return _work(request, phase)
    except DocanalystError as exc:
        if out_of_memory(exc):
            return {"kind": "memory", "phase": phase[0]}
        answer = {"kind": "error", "class": type(exc).__name__, "message": exc.message, "page": exc.page}
        if isinstance(exc, BudgetError):
            answer.update(needed=exc.needed, available=exc.available, profile=exc.profile)
        return {**answer, "document_id": exc.document_id}
    except MemoryError:
        return {"kind": "memory", "phase": phase[0]}
    except Exception as exc:  # a bug or a library failure on a hostile file: still one plain line
        if out_of_memory(exc):
            return {"kind": "memory", "phase": phase[0]}
        return {"kind": "error", "class": "DamagedPdfError", "message": f"could not read: {type(exc).__name__}"}
    finally:
        _uncap_memory()


def _work(request: dict[str, Any], phase: list[str]) -> dict[str, Any]:
    from docanalyst.pdf import load_pdf

    started = time.perf_counter()
    document = load_pdf(request["path"], request["password"], **request["options"])
    read_s = time.perf_counter() - started
    limit = int(request.get("max_chars", MAX_TEXT_CHARS))
    if len(document.text) > limit:
        raise PdfTextLimitError(
            f"the text is {len(document.text):,} characters, over the reader's cap of {limit:,} (no profile's "
            "window could hold it); nothing was sent",
            path=request["path"],
        )
    plan = request.get("plan")
    if plan is None:
        return {"kind": "document", "document": asdict(document)}
    phase[0] = "counting tokens"
    sys.stderr.write(f"{PHASE}counting tokens\n")  # a Rust abort leaves no answer: the parent reads this
    sys.stderr.flush()
    from docanalyst import planning
    from docanalyst.options import ExtractOptions

    options = ExtractOptions(**{**plan["options"], "reuse_statuses": tuple(plan["options"]["reuse_statuses"])})
    settings = _settings(plan["settings"])
    if plan.get("measure"):
        report, verdict = planning.assess(settings, document, options)
        return {"kind": "measured", "document": asdict(document), "report": asdict(report), "verdict": verdict}
    prepared = planning.prepare(settings, request["path"], document, options, read_s)
    return {"kind": "prepared", "prepared": asdict(prepared)}


def _settings(data: dict[str, Any]) -> Settings:
    """The parent's settings, from JSON (tokenizers are cached per model folder, so reuse between files holds)."""
    from docanalyst.config import Settings

    paths = {"home": Path(data["home"]), "corpus_dir": Path(data["corpus_dir"]) if data["corpus_dir"] else None}
    return Settings(**{**data, **paths, "extra": dict(data["extra"])})
