"""A bad template file as one line: ``nda.yaml: fields[2].max_items: must be at least 1``.

pydantic's own messages name the rule in its terms ("Input should be greater than or equal to 1") and a
YAML parser speaks of marks and scanners; a person editing a file wants the key, as written in the file, and
what to change. Only the first problem is reported: fixing one at a time is how a file gets edited anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

_TYPES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a mapping of settings (key: value)",
    "dict_type": "must be a mapping of settings (key: value)",
    "model_attributes_type": "must be a mapping of settings (key: value)",
    "missing": "is required",
}
IDENTIFIER_RULE = "must be a lowercase name: a-z, 0-9 and _, starting with a letter, at most 40 characters"


def where(loc: Sequence[int | str]) -> str:
    """``('fields', 2, 'max_items')`` -> ``fields[2].max_items``: the key as a person finds it in the file."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _keys_of(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, ...]:
    """The keys allowed where an unknown key was found (the model that ``loc``'s parent names)."""
    from docanalyst.templates.spec import FieldDef, SubField, TemplateSpec

    parent = [p for p in loc[:-1] if isinstance(p, str)]
    owner: type[BaseModel] = model
    if parent[-1:] == ["fields"]:
        owner = FieldDef
    elif parent[-1:] == ["extra"]:
        owner = SubField
    elif not parent:
        owner = TemplateSpec
    return tuple(owner.model_fields)


def _problem(error: Any, model: type[BaseModel]) -> str:
    kind, ctx, loc = error["type"], error.get("ctx") or {}, error["loc"]
    if kind in _TYPES:
        return _TYPES[kind]
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "too_short":
        return f"needs at least {ctx['min_length']} entr{'y' if ctx['min_length'] == 1 else 'ies'}"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} entries"
    if kind == "string_pattern_mismatch":
        return IDENTIFIER_RULE
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "extra_forbidden":
        return f"is not a setting here (use {', '.join(_keys_of(model, loc))})"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first problem of a failed validation as ``key: problem`` (or just the problem for the whole file)."""
    error = exc.errors()[0]
    key = where(error["loc"])
    problem = _problem(error, model)
    return f"{key}: {problem}" if key else problem
