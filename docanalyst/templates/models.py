"""What a template declaration becomes: its result model (pydantic ``create_model``) and its eval field specs.

The result model is built from the same cited leaf as always (schemas.Cited: value, quote, page, with the
quote's shared bound and the page check against the document), so a user template's answer is grounded,
stored, exported and scored like a built-in's. Only what the declaration changes gets a model of its own: a
value bound other than the default, or plain sub-fields beside the value (the contract's party ``role``).
For the built-ins this yields the very JSON schema the hand-written classes had (tests/data/
schemas_before_registry.json proves it), so their cache keys and prompts stay what they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from docanalyst.evidence import QUOTES, REFS
from docanalyst.schemas import VALUE_MAX, Cited, CitedRef
from docanalyst.templates.spec import FieldDef, Kind, TemplateSpec


@dataclass(frozen=True)
class FieldSpec:
    """How `docanalyst eval` scores one field: its kind (how values compare) and whether it holds a list."""

    name: str
    kind: Kind
    many: bool = False


def camel(name: str) -> str:
    """``notice_period`` -> ``NoticePeriod``: the JSON schema's name for a model built from a declaration."""
    return "".join(part.capitalize() for part in name.split("_"))


def leaf_model(field: FieldDef, base: type[BaseModel] = Cited) -> type[BaseModel]:
    """The cited leaf of one field: ``base`` itself (``Cited``, or ``CitedRef`` for ``--evidence refs``) unless
    the field narrows the value or adds sub-fields."""
    if field.max_length == VALUE_MAX and not field.extra:
        return base
    definitions: dict[str, Any] = {
        sub.name: (str | None, Field(default=None, max_length=sub.max_length, description=sub.description or None))
        for sub in field.extra
    }
    if field.max_length != VALUE_MAX:
        definitions["value"] = (str | None, Field(default=None, max_length=field.max_length))
    leaf: type[BaseModel] = create_model(camel(field.item or field.name), __base__=base, **definitions)
    return leaf


TEMPLATE_HASH = "__template_sha256__"


def result_model(spec: TemplateSpec, template_sha256: str | None = None, evidence: str = QUOTES) -> type[BaseModel]:
    """``<Name>Result``: every field a cited leaf (or a bounded list of them), all defaulting to "not said".
    With ``evidence="refs"`` each leaf cites sentence ids instead of a quote and page (evidence.py).

    The model carries its declaration's hash (``TEMPLATE_HASH``) for schemas.schema_hash: the run cache key
    then changes when a template is edited, even where the edit (a description, the task) leaves the JSON
    schema as it was."""
    definitions: dict[str, Any] = {}
    base: type[BaseModel] = CitedRef if evidence == REFS else Cited
    for field in spec.fields:
        leaf = leaf_model(field, base)
        if field.many:
            definitions[field.name] = (list[leaf], Field(default_factory=list, max_length=field.items))  # type: ignore[valid-type]
        else:
            definitions[field.name] = (leaf, Field(default_factory=leaf))
    model: type[BaseModel] = create_model(
        f"{camel(spec.name)}Result", __config__=ConfigDict(extra="forbid"), **definitions
    )
    setattr(model, TEMPLATE_HASH, template_sha256)
    return model


def field_specs(spec: TemplateSpec) -> dict[str, FieldSpec]:
    """The eval view of the declaration, in the template's field order."""
    return {f.name: FieldSpec(f.name, f.kind, f.many) for f in spec.fields}
