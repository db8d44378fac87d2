"""Result schemas: the cited leaf every template's values share (value + quote + page), and the JSON schema
handed to structured decoding. What each template extracts is declared in docanalyst/templates.

Bounds matter for small models: without ``max_length`` on strings and lists, a tiny model can loop inside
an array until ``max_tokens``. The page bound depends on the document, so ``json_schema_for`` patches
``maximum: page_count`` into every ``page`` property before the schema is handed to the engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from docanalyst.evidence import EVIDENCE_ITEMS, ID_MAX_LENGTH, ID_PATTERN

QUOTE_MAX = 300
VALUE_MAX = 200

Quote = Annotated[str | None, Field(max_length=QUOTE_MAX, description="exact words copied from the document")]
PageNo = Annotated[int | None, Field(ge=1, description="page number the quote is on ([Page N] markers)")]


class Cited(BaseModel):
    """A value and its evidence. ``value`` null means the document does not say."""

    model_config = ConfigDict(extra="forbid")

    value: str | None = Field(default=None, max_length=VALUE_MAX)
    quote: Quote = None
    page: PageNo = None

    @field_validator("page")
    @classmethod
    def _page_in_document(cls, page: int | None, info: ValidationInfo) -> int | None:
        limit = (info.context or {}).get("page_count")
        if page is not None and limit is not None and page > limit:
            raise ValueError(f"page {page} is beyond the document's last page ({limit})")
        return page


EvidenceId = Annotated[str, Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)]


class CitedRef(BaseModel):
    """A value and the ids of the numbered sentences that support it (``--evidence refs``, evidence.py): the
    quote, page and span are filled in from the document after validation (grounding.resolve_evidence)."""

    model_config = ConfigDict(extra="forbid")

    value: str | None = Field(default=None, max_length=VALUE_MAX)
    evidence: list[EvidenceId] = Field(default_factory=list, max_length=EVIDENCE_ITEMS)


class AnswerResult(BaseModel):
    """``docanalyst ask``: a free-form answer and the passages that support it."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(default=None, max_length=1500)
    citations: list[Cited] = Field(default_factory=list, max_length=5)


class AnswerRefsResult(BaseModel):
    """``docanalyst ask --evidence refs``: the answer, its citations by sentence id."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(default=None, max_length=1500)
    citations: list[CitedRef] = Field(default_factory=list, max_length=5)


# The built-in templates' result models are derived from their declarations (docanalyst/templates), which are
# built on Cited above: they are looked up here on first use, so that this module stays below the registry.
_DERIVED = {"ContractResult": "contract", "PaperResult": "paper", "GenericResult": "generic"}


def __getattr__(name: str) -> Any:
    """``RESULT_MODELS`` (built-ins and "ask", by name) and ``ContractResult``/``PaperResult``/``GenericResult``:
    views of the registry, kept for the callers that name a built-in directly."""
    if name != "RESULT_MODELS" and name not in _DERIVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from docanalyst.templates import builtins

    if name == "RESULT_MODELS":
        return {**{t.name: t.result_model for t in builtins()}, "ask": AnswerResult}
    return next(t.result_model for t in builtins() if t.name == _DERIVED[name])


def _patch(node: Any, page_count: int) -> None:
    """Bound every page to this document and make every property required.

    Required, because with optional properties a small model skips straight to the last field (measured
    with SmolLM2-135M: it emitted only ``key_obligations``); a field the document lacks is written as null.
    """
    if isinstance(node, dict):
        if "pattern" in node:  # xgrammar ignores maxLength beside a pattern (with a warning); the pattern bounds it
            node.pop("maxLength", None)
        props = node.get("properties")
        if isinstance(props, dict):
            node["required"] = list(props)
            if "page" in props:
                page = props["page"]
                for option in page.get("anyOf", [page]):
                    if option.get("type") == "integer":
                        option["maximum"] = page_count
        for value in node.values():
            _patch(value, page_count)
    elif isinstance(node, list):
        for value in node:
            _patch(value, page_count)


def json_schema_for(model: type[BaseModel], page_count: int) -> dict[str, Any]:
    """The JSON schema sent to structured decoding: pages bounded to 1..page_count, all fields present."""
    schema = model.model_json_schema()
    _patch(schema, page_count)
    return schema


def schema_hash(model: type[BaseModel], bounds: object = None) -> str:
    """Stable hash of the (unpatched) schema, of the template declaration the model was derived from (an edited
    description or task asks another question, though the schema is the same: templates/models.py), and of
    the profile's output bounds when they narrow it (a run with shorter quotes answers another question):
    part of the result-cache key and stored with each run."""
    canonical = json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":"))
    template = getattr(model, "__template_sha256__", None)
    if template:
        canonical += f"|template:{template}"
    if bounds is not None and bounds != type(bounds)():
        canonical += repr(bounds)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def iter_cited(data: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Walk a validated result dump and yield (field path, cited dict) for every value with evidence: a quote
    and page, or (``--evidence refs``) a list of sentence ids."""
    if isinstance(data, dict):
        if "value" in data and (("quote" in data and "page" in data) or isinstance(data.get("evidence"), list)):
            yield path, data
            return
        for key, value in data.items():
            yield from iter_cited(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from iter_cited(value, f"{path}[{i}]")
