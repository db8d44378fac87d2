"""Answers from a reader process (isolation.py), turned into results or errors in the parent.

The reader handles hostile bytes, so its answer is data only: JSON of a known shape, rebuilt here into our own
types field by field; anything else is one plain error.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docanalyst import errors
from docanalyst.document import Document, Page
from docanalyst.errors import BudgetError, DamagedPdfError, DocanalystError, PdfError
from docanalyst.statuses import Verdict

if TYPE_CHECKING:
    from docanalyst.budget import BudgetReport
    from docanalyst.planning import Prepared

PHASE = "docanalyst-reader-phase: "  # a stderr line naming what the reader is doing (a crash leaves no answer)


class PdfLimitError(PdfError):
    """Reading the file passed a limit (time, memory or text length) and was stopped."""


class PdfTimeoutError(PdfLimitError):
    pass


class PdfMemoryError(PdfLimitError):
    pass


class PdfTextLimitError(PdfLimitError):
    pass


@dataclass(frozen=True)
class Measured:
    """The ``tokens`` command's answer: the document, its budget for the requested profile, the verdict."""

    document: Document
    report: BudgetReport
    verdict: Verdict


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
        errors.EngineError,  # a server's tokenizer (--engine URL) that did not answer: exit 5, not a PDF's fault
        PdfTextLimitError,
    )
}


def answer_result(path: Path, returncode: int, answer: Any, err: str, memory_mb: int) -> Document | Prepared | Measured:
    """The result a (parsed) answer stands for; raises the error it reports, or says what went wrong."""
    kind = answer.get("kind") if isinstance(answer, dict) else None
    if kind in ("document", "prepared", "measured"):
        try:
            if kind == "measured":
                return Measured(
                    _document(answer["document"]), _report(answer["report"]), Verdict.parse(str(answer["verdict"]))
                )
            return _document(answer["document"]) if kind == "document" else _prepared(path, answer["prepared"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PdfError("the reader process answered something that is not a document", path=path) from exc
    if kind == "memory":
        raise PdfMemoryError(f"{answer.get('phase') or 'reading'} needed more than {memory_mb} MB of memory", path=path)
    if kind == "error":
        raise _error(path, answer)
    phase = next((line[len(PHASE) :] for line in reversed(err.splitlines()) if line.startswith(PHASE)), "reading")
    if "memory allocation of" in err or "MemoryError" in (err.strip().splitlines() or [""])[-1]:
        # Rust (the tokenizer) aborts on a failed allocation: "memory allocation of N bytes failed"
        raise PdfMemoryError(f"{phase} needed more than {memory_mb} MB of memory", path=path)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        raise DamagedPdfError(f"the reader process crashed on this file ({name})", path=path)
    last = ([line for line in err.strip().splitlines() if not line.startswith(PHASE)] or ["no message"])[-1]
    raise PdfError(f"the reader process failed (exit {returncode}): {last[:300]}", path=path)


def _error(path: Path, answer: dict[str, Any]) -> DocanalystError:
    message, page, document_id = str(answer.get("message")), answer.get("page"), answer.get("document_id")
    document_id = document_id if isinstance(document_id, str) else None
    if answer.get("class") == "BudgetError":
        numbers = (int(answer["needed"]), int(answer["available"]), str(answer["profile"]))
        return BudgetError(
            message, needed=numbers[0], available=numbers[1], profile=numbers[2], path=path, document_id=document_id
        )
    cls = _KNOWN_ERRORS.get(str(answer.get("class")), DamagedPdfError)
    error = cls(message, path=path, page=page if isinstance(page, int) else None)
    error.document_id = document_id
    return error


def _document(data: dict[str, Any]) -> Document:
    pages = tuple(Page(**page) for page in data.pop("pages"))
    data["warnings"] = tuple(str(w) for w in data.get("warnings", ()))
    return Document(pages=pages, **data)


def _prepared(path: Path, data: dict[str, Any]) -> Prepared:
    from docanalyst.budget import BudgetReport
    from docanalyst.planning import Prepared
    from docanalyst.prompting import BuiltPrompt

    prompt = data["prompt"]
    ids = [tuple(int(i) for i in prompt[key]) for key in ("prefix_ids", "suffix_ids")]
    return Prepared(
        path=str(path),
        document=_document(data["document"]),
        profile=str(data["profile"]),
        model_ref=str(data["model_ref"]),
        model_name=str(data["model_name"]),
        budget=BudgetReport(**data["budget"]),
        prompt=BuiltPrompt(str(prompt["prefix"]), str(prompt["suffix"]), ids[0], ids[1]),
        notes=tuple(str(note) for note in data["notes"]),
        timings={str(k): float(v) for k, v in data["timings"].items()},
    )


def _report(data: dict[str, Any]) -> BudgetReport:
    from docanalyst.budget import BudgetReport

    return BudgetReport(**data)
