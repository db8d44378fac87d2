"""What a cut-off or invalid answer still holds: every complete, valid field, and the names of the rest.

An answer that stops early (``finish_reason=length``, the repetition guard's forced end, a stop) or that still
fails validation after the re-ask is not worthless: structured decoding writes the fields in schema order, so
everything before the point of failure is finished JSON. We read the top-level object field by field with the
standard library's JSON decoder (``raw_decode`` reads one complete value and says where it ended, or fails on a
truncated one); of a list that was cut off, its complete items are kept. Each field is then validated on its
own against the template's model, so one bad field (a page beyond the document) costs only that field.
The run is stored as ``partial`` with the names of the fields that are missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Salvaged:
    result: dict[str, Any]  # the validated model's dump: salvaged fields, defaults (null / empty) elsewhere
    kept: tuple[str, ...]  # top-level fields taken from the answer
    missing: tuple[str, ...]  # top-level fields not in it, or invalid; a list cut short reads "name (cut off)"


def _skip(text: str, i: int, chars: str = " \t\r\n") -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _complete_items(text: str, i: int) -> tuple[list[Any], bool]:
    """The complete items of the list that starts at ``text[i] == '['`` and whether the list itself closed."""
    items: list[Any] = []
    i = _skip(text, i + 1)
    while i < len(text):
        if text[i] == "]":
            return items, True
        try:
            item, i = _DECODER.raw_decode(text, i)
        except ValueError:
            return items, False
        items.append(item)
        i = _skip(text, i, " \t\r\n,")
    return items, False


def read_fields(text: str) -> tuple[dict[str, Any], set[str]]:
    """The complete top-level fields of a possibly truncated JSON object, and the names of lists cut short."""
    fields: dict[str, Any] = {}
    cut: set[str] = set()
    i = _skip(text, 0)
    if not text.startswith("{", i):
        return fields, cut
    i = _skip(text, i + 1)
    while i < len(text) and text[i] != "}":
        key: Any = None
        try:
            key, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if not isinstance(key, str) or not text.startswith(":", i):
                break
            i = _skip(text, i + 1)
            value, i = _DECODER.raw_decode(text, i)
        except ValueError:
            if isinstance(key, str) and text.startswith("[", i):
                items, _ = _complete_items(text, i)
                if items:
                    fields[key], cut = items, cut | {key}
            break
        fields[key] = value
        i = _skip(text, i, " \t\r\n,")
    return fields, cut


def salvage(text: str, model: type[BaseModel], page_count: int) -> Salvaged | None:
    """Every complete field of ``text`` that is valid on its own, or None when there is none."""
    fields, cut = read_fields(text)
    context = {"page_count": page_count}
    valid: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in model.model_fields:
            continue
        try:
            model.model_validate({name: value}, context=context)
        except ValidationError:
            continue
        valid[name] = value
    if not valid:
        return None
    result = model.model_validate(valid, context=context).model_dump(mode="json")
    missing = [n for n in model.model_fields if n not in valid]
    missing += [f"{n} (cut off)" for n in model.model_fields if n in valid and n in cut]
    return Salvaged(result, tuple(valid), tuple(missing))
