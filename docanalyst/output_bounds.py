"""How long an answer can be: the schema's worst case in the model's tokens, and per-profile bounds.

Structured decoding holds the answer to the JSON schema, and with free whitespace switched off (engine.py)
the schema alone fixes how long the longest answer can be: every string at its ``maxLength``, every list at its
``maxItems``, every nullable value at its longer branch. The reserve for the answer is that worst case, so a
complete answer always fits, whatever the model does and whatever the processor (greedy decoding differs
across CPUs; a tiny model one token from a loop loops on the next machine).

Counting: the JSON syntax (braces, keys, separators, ``null``, page numbers) is tokenised with the model's own
tokenizer; string contents count one token per character, the most a byte-level BPE token can cost for ASCII
text. Non-ASCII text can take more tokens per character; an answer that is cut off all the same keeps its
complete fields as a *partial* result (see salvage.py).

A profile narrows a template's bounds with :class:`OutputBounds` (shorter strings, fewer list items for a small
model), so that the same template fits every profile's output limit.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from docanalyst.errors import ConfigError
from docanalyst.tokenization import TokenCounter

# Without free whitespace the grammar writes "," and ":" (vLLM asks xgrammar for those separators, though
# xgrammar 0.2.8 may still put a space after a comma); counting ", " and ": " covers both.
SEPARATORS = (", ", ": ")
MIN_STRING = 8  # a scaled string keeps at least this many characters


@dataclass(frozen=True)
class OutputBounds:
    """A profile's caps on top of a template's own bounds: strings scaled down, lists capped."""

    string_scale: float = 1.0
    max_items: int | None = None

    def string_chars(self, declared: int) -> int:
        return declared if self.string_scale >= 1.0 else max(MIN_STRING, int(declared * self.string_scale))

    def items(self, declared: int) -> int:
        return declared if self.max_items is None else min(declared, self.max_items)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return dict(target)


def apply_bounds(schema: dict[str, Any], bounds: OutputBounds) -> dict[str, Any]:
    """A copy of the schema with every ``maxLength`` and ``maxItems`` narrowed to the profile's bounds."""
    bounded = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and isinstance(node.get("maxLength"), int):
                node["maxLength"] = bounds.string_chars(node["maxLength"])
            if node.get("type") == "array" and isinstance(node.get("maxItems"), int):
                node["maxItems"] = bounds.items(node["maxItems"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(bounded)
    return bounded


def _longest(node: dict[str, Any], root: dict[str, Any], where: str) -> tuple[str, int]:
    """(JSON syntax of the longest instance with empty strings, characters inside its strings)."""
    node = _resolve(node, root)
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        branches = [_longest(option, root, where) for option in options]
        return max(branches, key=lambda b: len(b[0]) + b[1])
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        return max((json.dumps(v, ensure_ascii=False) for v in values), key=len), 0
    kind = node.get("type")
    if kind == "object":
        parts, chars = [], 0
        for key, prop in (node.get("properties") or {}).items():
            text, inner = _longest(prop, root, f"{where}.{key}" if where else key)
            parts.append(json.dumps(key) + SEPARATORS[1] + text)
            chars += inner
        return "{" + SEPARATORS[0].join(parts) + "}", chars
    if kind == "array":
        if not isinstance(node.get("maxItems"), int):
            raise ConfigError(f"the list '{where}' has no maxItems: the answer's length cannot be bounded")
        text, inner = _longest(node.get("items") or {}, root, f"{where}[]")
        count = node["maxItems"]
        return "[" + SEPARATORS[0].join([text] * count) + "]", inner * count
    if kind == "string" and isinstance(node.get("pattern"), str) and not isinstance(node.get("maxLength"), int):
        longest = pattern_chars(node["pattern"])
        if longest is None:
            raise ConfigError(f"the string '{where}' has a pattern of unbounded length: the answer cannot be bounded")
        return '""', longest
    if kind == "string":
        if not isinstance(node.get("maxLength"), int):
            raise ConfigError(f"the string '{where}' has no maxLength: the answer's length cannot be bounded")
        return '""', node["maxLength"]
    if kind == "integer":
        return str(node.get("maximum", -(10**18))), 0
    if kind == "number":
        return "-1.0000000000000000e+308", 0
    if kind == "boolean":
        return "false", 0
    if kind == "null":
        return "null", 0
    raise ConfigError(f"the field '{where}' has no type the answer's length can be bounded for")


# One regex atom (a class, an escape, any other character) and its optional bounded repeat.
_ATOM = re.compile(r"(\[(?:\\.|[^\]])*\]|\\.|[^\\\[\](){}|*+?^$])(\{(\d+)(?:,(\d+))?\}|\?)?")


def pattern_chars(pattern: str) -> int | None:
    """The longest string a simple pattern matches (the evidence ids' ``^S[1-9][0-9]{0,6}$``: 8), or None when
    it cannot be told: alternation, groups, ``*`` or ``+`` (a string only its maxLength can bound)."""
    body = pattern.removeprefix("^").removesuffix("$")
    total, at = 0, 0
    while at < len(body):
        match = _ATOM.match(body, at)
        if match is None:
            return None
        repeat, _low, high = match[2], match[3], match[4]
        total += 1 if repeat is None or repeat == "?" else int(high if high is not None else _low)
        at = match.end()
    return total


def worst_case_tokens(schema: dict[str, Any], tokenizer: TokenCounter) -> int:
    """The most tokens an answer that follows ``schema`` can take (see the module doc for how it counts).

    One token per string is added for the closing quote, which a byte-level tokenizer may keep apart from
    the characters around it."""
    syntax, chars = _longest(schema, schema, "")
    strings = syntax.count('""')
    return tokenizer.count(syntax) + chars + strings
