"""A run as typed data: what the pipeline hands the store (RunRecord), what identifies the same question
again (RunKey), and what a stored run gives back (StoredRun).

The store maps these to its rows (store.py) and nothing else builds rows, so adding a column means changing the
record and one mapping, not every caller. Pure data: no database, no engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from docanalyst.document import Document
from docanalyst.grounding import GroundedField, GroundingSummary
from docanalyst.statuses import RunStatus


@dataclass(frozen=True)
class RunKey:
    """The same question about the same document: a stored run with this key answers it again (the cache)."""

    document_sha256: str
    template: str
    template_version: int
    schema_hash: str
    profile: str
    model: str
    question: str | None = None  # `ask` runs; None for a template's extraction


@dataclass(frozen=True)
class RunRecord:
    """One finished run, ready to store with its document and its grounded fields in one transaction."""

    key: RunKey
    document: Document
    document_tokens: int | None  # the budget's count of the document's own tokens
    template_sha256: str
    sampling: Mapping[str, Any]
    status: RunStatus
    error: str | None
    attempts: int
    usage: Mapping[str, int]
    timings: Mapping[str, float]
    result: dict[str, Any] | None  # annotated with grounding (grounding.annotate)
    raw_output: str | None
    fields: tuple[GroundedField, ...]
    grounding: GroundingSummary
    missing: tuple[str, ...] = ()  # partial runs: the top-level fields the answer did not deliver
    token_logprobs_json: str | None = None  # the answer's tokens and log-probabilities (confidence.pack)


@dataclass(frozen=True)
class StoredRun:
    """What a stored run gives back to answer its question again without the engine."""

    id: int
    status: RunStatus
    result: dict[str, Any] | None
    missing: list[str]
    usage: dict[str, int]
    timings: dict[str, float]
    fields: list[GroundedField] = field(default_factory=list)
    field_groups: dict[str, Any] | None = None  # a run decoded in field groups: per-group usage (sampling JSON)
