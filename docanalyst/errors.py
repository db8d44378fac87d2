"""One exception tree for the whole application.

Every error carries the context a person needs (file, page, document id) and a plain message; the CLI
and UI turn it into one line. Nothing below the edge formats errors for humans beyond ``str()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docanalyst.display import show_path


def _rebuild(cls: type[DocanalystError], message: str, state: dict[str, Any]) -> DocanalystError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class DocanalystError(Exception):
    """Base class: a failure we expected and can explain in one line."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        page: int | None = None,
        document_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.page = page
        self.document_id = document_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (batch readers); keyword-only constructors do not unpickle by default.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        where = []
        if self.path:
            where.append(show_path(self.path))  # one printable line whatever bytes the name holds
        if self.page is not None:
            where.append(f"page {self.page}")
        prefix = f"{': '.join(where)}: " if where else ""
        return f"{prefix}{self.message}"


class ConfigError(DocanalystError):
    """Bad settings: unknown profile, missing model folder, bad database URL."""

    exit_code = 2


class TemplateError(ConfigError):
    """A template that cannot be used: unknown name, unreadable file, or one bad key (named, as in the file)."""


class PdfError(DocanalystError):
    """The file cannot be turned into a document."""

    exit_code = 3


class NotAPdfError(PdfError):
    pass


class DamagedPdfError(PdfError):
    pass


class EncryptedPdfError(PdfError):
    pass


class EmptyDocumentError(PdfError):
    pass


class NoTextError(PdfError):
    """Every page lacks a text layer (a scan without OCR): there is nothing to send."""


class BudgetError(DocanalystError):
    """The document does not fit the model's window; carries the numbers."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        needed: int,
        available: int,
        profile: str,
        path: str | Path | None = None,
        document_id: str | None = None,
    ) -> None:
        super().__init__(message, path=path, document_id=document_id)
        self.needed = needed
        self.available = available
        self.profile = profile


class EngineError(DocanalystError):
    """The inference engine could not be built or failed while generating."""

    exit_code = 5


class ModelOutputError(DocanalystError):
    """The model answered, but not with something we can store as a valid result."""

    exit_code = 6


class OutputTruncatedError(ModelOutputError):
    """The model hit max_tokens (finish_reason == "length"): the JSON is incomplete."""


class OutputValidationError(ModelOutputError):
    """The JSON did not validate against the template's schema, even after one re-ask."""


class PartialResultError(ModelOutputError):
    """The answer was cut off or stayed invalid, but its complete, valid fields were kept (status "partial").

    Not a crash: the run is stored and shown like any other, with the missing fields named. Its own exit
    code tells scripts that the result is incomplete; under --strict it fails like any model-output error."""

    exit_code = 8


class UngroundedError(ModelOutputError):
    """--strict: some quotes the model gave are nowhere in the document."""


class StoreError(DocanalystError):
    exit_code = 7
