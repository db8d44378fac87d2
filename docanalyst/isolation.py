"""Reading a PDF in a child process, bounded in time and memory.

MuPDF is C. A hostile or broken file can make it loop for minutes, ask for gigabytes, or crash the process.
``load_pdf_isolated`` runs ``docanalyst.pdf.load_pdf`` in a fresh Python process whose address space is capped
(``RLIMIT_AS``: the child's own footprint after imports plus ``memory_mb``) and kills it at ``timeout_s``. The
caller gets the Document, or one ``PdfError`` with a plain reason: too slow, too much memory, crashed, or the
loader's own error (not a PDF, encrypted, ...).

Request and answer cross the pipe as JSON, never pickle: the child handles hostile bytes, so nothing it sends
back can run code in the parent. This module does not import PyMuPDF; only the child does, through ``pdf``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from docanalyst import errors
from docanalyst.document import Document, Page
from docanalyst.errors import DamagedPdfError, DocanalystError, PdfError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 2048
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_CHILD = "from docanalyst.isolation import _child_main; _child_main()"
# Errors the child may name in its answer; anything else arrives as DamagedPdfError.
_KNOWN_ERRORS: dict[str, type[DocanalystError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotAPdfError,
        errors.DamagedPdfError,
        errors.EncryptedPdfError,
        errors.EmptyDocumentError,
        errors.NoTextError,
        errors.ConfigError,
    )
}


class PdfLimitError(PdfError):
    """Reading the file passed a limit (time or memory) and was stopped."""


class PdfTimeoutError(PdfLimitError):
    pass


class PdfMemoryError(PdfLimitError):
    pass


def load_pdf_isolated(
    path: str | Path,
    password: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    **options: Any,
) -> Document:
    """``load_pdf(path, password, **options)`` in a child process with a wall-clock limit and a memory cap.

    ``options`` are load_pdf's keyword arguments (``tables``, ``ocr``, ``ocr_language``, ``ocr_dpi``). Raises
    PdfTimeoutError ("reading took longer than N s"), PdfMemoryError ("reading needed more than N MB of
    memory"), DamagedPdfError when the reader crashes, or whatever PdfError/ConfigError load_pdf raised.
    """
    path = Path(path)
    request = json.dumps(
        {"path": str(path), "password": password, "memory_mb": memory_mb, "options": options, "parent": os.getpid()}
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise DocanalystError(f"cannot start the reader process: {exc}", path=path) from exc
    try:
        out, err = proc.communicate(request.encode("utf-8"), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PdfTimeoutError(f"reading took longer than {timeout_s:g} s", path=path) from None
    except BaseException:  # Ctrl-C and friends: never leave the child behind
        proc.kill()
        proc.communicate()
        raise
    return _answer(path, proc.returncode, out, err, memory_mb)


def _answer(path: Path, returncode: int, out: bytes, err: bytes, memory_mb: int) -> Document:
    try:
        answer = json.loads(out.decode("utf-8"))
        kind = answer["kind"]
    except (ValueError, KeyError, TypeError):
        kind = None
    if kind == "document":
        try:
            return _document(answer["document"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PdfError("the reader process answered something that is not a document", path=path) from exc
    if kind == "memory":
        raise PdfMemoryError(f"reading needed more than {memory_mb} MB of memory", path=path)
    if kind == "error":
        cls = _KNOWN_ERRORS.get(str(answer.get("class")), DamagedPdfError)
        page = answer.get("page")
        raise cls(str(answer.get("message")), path=path, page=page if isinstance(page, int) else None)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        raise DamagedPdfError(f"the reader process crashed on this file ({name})", path=path)
    last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
    if "MemoryError" in last:
        raise PdfMemoryError(f"reading needed more than {memory_mb} MB of memory", path=path)
    raise PdfError(f"the reader process failed (exit {returncode}): {last[:300]}", path=path)


def _document(data: dict[str, Any]) -> Document:
    pages = tuple(Page(**page) for page in data.pop("pages"))
    data["warnings"] = tuple(str(w) for w in data.get("warnings", ()))
    return Document(pages=pages, **data)


def _footprint_bytes() -> int:
    """This process's current address-space size (Linux), 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies (a batch worker killed at its deadline must not
    leave a reader running on a hostile file); exit at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def _child_main() -> None:
    """The reader process: one request on stdin, one JSON answer on the original stdout."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answer
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    _die_with_parent(int(request.get("parent", os.getppid())))
    from docanalyst.pdf import load_pdf, out_of_memory

    answer: dict[str, Any]
    try:
        cap_memory(int(request["memory_mb"]))
        document = load_pdf(request["path"], request["password"], **request["options"])
        answer = {"kind": "document", "document": asdict(document)}
    except DocanalystError as exc:
        answer = {"kind": "error", "class": type(exc).__name__, "message": exc.message, "page": exc.page}
        if out_of_memory(exc):
            answer = {"kind": "memory"}
    except MemoryError:
        answer = {"kind": "memory"}
    except Exception as exc:  # a bug or a library failure on a hostile file: still one plain line
        answer = {"kind": "error", "class": "DamagedPdfError", "message": f"could not read: {type(exc).__name__}"}
        if out_of_memory(exc):
            answer = {"kind": "memory"}
    _uncap_memory()
    data = json.dumps(answer, ensure_ascii=True).encode("ascii")
    with os.fdopen(answer_fd, "wb") as out:
        out.write(data)
