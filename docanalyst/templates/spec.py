"""The template file format, as pydantic models: what a user writes in ``nda.yaml`` and what the built-ins are.

One declaration feeds everything that used to restate a template: the result model (templates/models.py), the
prompt's task and field list (prompts/extract.j2), the eval field kinds (evaluation/fields.py), the CLI's
choices and the UI's list. The built-ins are files in this very format (templates/builtin/*.yaml).
Bounds are part of the format because structured decoding needs them: without a ``max_items`` a small model
can loop inside a list until the output limit (output_bounds.py refuses such a schema). The quote's length is
not a template setting: it is the shared leaf bound (schemas.QUOTE_MAX).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["date", "duration", "jurisdiction", "names", "text", "passage", "presence"]
Shape = Literal["one", "list"]
IDENTIFIER = r"^[a-z][a-z0-9_]{0,39}$"
# A field named like a cited leaf's own keys would make the whole result look like one cited value.
RESERVED = ("value", "quote", "page")
# Template text goes into the prompt as our own words (not as marked data), so it must not carry the chat's
# control tokens or the data marks (prompting._DATA).
_FORBIDDEN = re.compile(r"<\||\|>|[\x00-\x09\x0b-\x1f\x7f]")
VALUE_MAX_DEFAULT = 200
LIST_MAX_DEFAULT = 5


def _clean_text(text: str) -> str:
    if _FORBIDDEN.search(text):
        raise ValueError("must not contain control characters or chat markers such as '<|'")
    return text


def _not_reserved(name: str) -> str:
    if name in RESERVED:
        raise ValueError(f"'{name}' is taken by every value's own keys (value, quote, page)")
    return name


class SubField(BaseModel):
    """A plain string beside each value of a field (contract ``parties`` have a ``role``), not separately cited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=IDENTIFIER)
    description: str = Field(default="", max_length=300)
    max_length: int = Field(default=80, ge=1, le=2000)

    _text = field_validator("description")(_clean_text)

    _name = field_validator("name")(_not_reserved)


class FieldDef(BaseModel):
    """One field: a cited value (or a list of them) the model fills from the document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=IDENTIFIER)
    description: str = Field(min_length=1, max_length=500)
    shape: Shape = "one"
    kind: Kind = "text"
    max_length: int = Field(default=VALUE_MAX_DEFAULT, ge=1, le=2000)
    max_items: int | None = Field(default=None, ge=1, le=50)
    # What one value is called in the JSON schema ($defs) when it needs a model of its own (``extra`` or a
    # ``max_length`` other than the default): the contract's ``parties`` hold a ``Party`` each.
    item: str | None = Field(default=None, pattern=IDENTIFIER)
    extra: tuple[SubField, ...] = ()

    _text = field_validator("description")(_clean_text)

    _name = field_validator("name")(_not_reserved)

    @model_validator(mode="before")
    @classmethod
    def _list_bound(cls, data: object) -> object:
        """A list left without ``max_items`` gets the default bound written in: the declaration is then the same
        (same hash) whether the file states the default or leaves it out, and `templates show` prints it."""
        if isinstance(data, dict) and data.get("shape") == "list" and data.get("max_items") is None:
            return {**data, "max_items": LIST_MAX_DEFAULT}
        return data

    @model_validator(mode="after")
    def _shape_and_bounds(self) -> FieldDef:
        if self.shape == "one" and self.max_items is not None:
            raise ValueError("max_items is only for shape: list")
        names = [sub.name for sub in self.extra]
        if len(set(names)) != len(names):
            raise ValueError("extra: sub-field names must be unique")
        return self

    @property
    def many(self) -> bool:
        return self.shape == "list"

    @property
    def items(self) -> int:
        """The list's bound (LIST_MAX_DEFAULT when the file leaves it out; 1 for a single value)."""
        return self.max_items or 1


class TemplateSpec(BaseModel):
    """A whole template. ``groups`` partition the fields into sections: for showing a result (the web app's
    result view) and, by default, for decoding (field_groups.py: one request per group, side by side on the
    document's cached prefix, where the profile asks for the declared groups). A template without groups is one
    section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=IDENTIFIER)
    label: str = Field(min_length=1, max_length=200)
    version: int = Field(default=1, ge=1)
    task: str = Field(min_length=1, max_length=2000, description="the prompt's task sentence, after 'Task: '")
    fields: tuple[FieldDef, ...] = Field(min_length=1, max_length=40)
    groups: tuple[tuple[str, ...], ...] = ()

    _text = field_validator("label", "task")(_clean_text)

    @field_validator("name")
    @classmethod
    def _not_ask(cls, name: str) -> str:
        if name == "ask":
            raise ValueError("'ask' is the built-in question template; choose another name")
        return name

    @model_validator(mode="after")
    def _fields_and_groups(self) -> TemplateSpec:
        names = [f.name for f in self.fields]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f"fields[{i}].name: '{name}' is declared twice")
            seen.add(name)
        if not self.groups:
            return self
        grouped: list[str] = [name for group in self.groups for name in group]
        unknown = [n for n in grouped if n not in seen]
        if unknown:
            raise ValueError(f"groups: '{unknown[0]}' is not a field")
        twice = sorted({n for n in grouped if grouped.count(n) > 1})
        if twice:
            raise ValueError(f"groups: '{twice[0]}' is in more than one group")
        missing = [n for n in names if n not in grouped]
        if missing:
            raise ValueError(f"groups: '{missing[0]}' is in no group (groups must cover every field)")
        if any(not group for group in self.groups):
            raise ValueError("groups: a group is empty")
        return self

    @property
    def field_groups(self) -> tuple[tuple[str, ...], ...]:
        """The groups, or one group of every field when the file declares none."""
        return self.groups or (tuple(f.name for f in self.fields),)

    def subset(self, names: tuple[str, ...]) -> TemplateSpec:
        """The same template asking only for ``names`` (in that order), without groups: what one decode group's
        prompt lists and its result model is built from (field_groups.py). Not validated again: every part of it
        already was."""
        by_name = {f.name: f for f in self.fields}
        return self.model_copy(update={"fields": tuple(by_name[n] for n in names), "groups": ()})
