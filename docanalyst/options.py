"""What a user asks for one extraction: the template, the profile, decoding, reuse, strictness and reading limits.

Its own module, below planning and the pipeline, because both of them (and the reader process, which gets it as
JSON) read it; the faces build it from their flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from docanalyst.statuses import RunStatus


@dataclass(frozen=True)
class ExtractOptions:
    template: str = "contract"
    profile: str | None = None
    model_path: str | None = None
    password: str | None = None
    allow_yarn: bool = True
    force: bool = False
    seed: int = 0
    # Decoding. Extraction is greedy; the perturbation tests sample (temperature > 0, several seeds) and vary the
    # penalty to take the other paths another processor's numerics would take.
    temperature: float = 0.0
    repetition_penalty: float | None = None  # None: the profile's
    repetition_guard: bool = True  # off: loops run until the schema's bounds end them
    # Stop every answer after this many tokens (a time cap on a slow machine); the complete fields are kept.
    max_output_tokens: int | None = None
    # Stored runs with these statuses answer the same question again without the engine. `extract` reuses
    # only valid results; `batch --resume` also counts flagged ones (greedy decoding would repeat them).
    reuse_statuses: tuple[str, ...] = (RunStatus.OK,)
    # --strict: a quote that is not evidence for its value (not found, too short, unsupported) or a run whose
    # evidence verdict is not "grounded" fails the run (status "ungrounded").
    strict: bool = False
    # Reading: OCR of pages that are only images (Tesseract), and the limits of the isolated reader process.
    ocr: bool = True
    ocr_language: str = "eng"
    read_timeout_s: float = 300.0
    read_memory_mb: int = 2048
    # --no-tables: read ruled tables as plain text, without table detection (faster; pdf.load_pdf's ``tables``).
    tables: bool = True
    # How values cite the document: "quotes" or "refs" (numbered sentences, evidence.py); None: the profile's.
    evidence: str | None = None
    # --field-groups: decode a template's fields as this many requests side by side on the document's cached
    # prefix (field_groups.py). None: the profile's default (EngineProfile.field_groups); 1: one request.
    field_groups: int | None = None
