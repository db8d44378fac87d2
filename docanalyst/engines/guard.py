"""The repetition guard: a vLLM logits processor that ends a loop the moment it is seen.

A small model decoding greedily can fall into a loop: the same few tokens inside one string ("Northwind
Northwind Northwind …"), or the same list item again and again. The schema bounds every string and list, so a
loop cannot run past the reserve, but on a CPU it still burns hundreds of tokens at a few tokens a second. The
guard watches each request's output and, once its tail repeats a unit three times, forces the token that ends
the loop: the closing ``"`` when the unit holds no quote character (the loop is inside one string), else the
closing ``]`` (the loop is a repeated list item). It only ever picks a token the grammar allows at that point,
and it changes nothing while there is no loop, so answers without a loop are the same with or without it.

Part of the engine layer: vLLM loads this class by name (``base.GUARD_CLASS``) in its engine process
(``LLM(logits_processors=…)``, ``vllm serve --logits-processors``), and a request opts in through
``SamplingParams.extra_args[GUARD_KEY]``: the ids as a mapping (in-process), or as JSON text (through a server's
``vllm_xargs``, whose values may only be strings and numbers in vLLM 0.24), or ``{"ids": "engine"}`` when the client
has no vocabulary (``tokenization.ServerTokenizer``): the guard then takes the ids from the engine's own tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from docanalyst.engines.base import GUARD_KEY
from docanalyst.tokenization import guard_ids

MAX_PERIOD = 48  # longest repeated unit looked for, in tokens (a list item of a small model fits)
REPEATS = 3  # the unit must occur this many times in a row
MIN_SPAN = 12  # and cover at least this many tokens (so "1, 1, 1" inside a quote is left alone)


def loop_period(ids: list[int]) -> int | None:
    """The shortest period p such that the tail of ``ids`` is one unit of p tokens repeated REPEATS times."""
    n = len(ids)
    if n < MIN_SPAN:
        return None
    last = ids[-1]
    for p in range(1, MAX_PERIOD + 1):
        span = max(MIN_SPAN, REPEATS * p)
        if span > n:
            return None
        # periodic over `span` tokens: every token equals the one p places before it (the cheap test first: this
        # runs for every request at every step)
        if ids[n - 1 - p] == last and ids[n - span + p :] == ids[n - span : n - p]:
            return p
    return None


class RepetitionGuard(AdapterLogitsProcessor):
    """Per request: force the closing token of the loop found at the tail of the output (see module doc)."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        super().__init__(vllm_config, device, is_pin_memory)
        model_config = vllm_config.model_config
        self._tokenizer = (str(model_config.tokenizer), getattr(model_config, "tokenizer_revision", None))

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token greedy decoding picks

    @cached_property
    def _engine_ids(self) -> dict[str, Any] | None:
        """The guard's ids from the engine's own tokenizer.json (its folder, or the hub cache)."""
        from tokenizers import Tokenizer

        name, revision = self._tokenizer
        path = Path(name) / "tokenizer.json"
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, "tokenizer.json", revision=revision))
        return guard_ids(Tokenizer.from_file(str(path)).get_vocab(with_added_tokens=False))

    def _config(self, params: Any) -> Mapping[str, Any] | None:
        config = (params.extra_args or {}).get(GUARD_KEY)
        if isinstance(config, str):
            config = json.loads(config)
        if config and "quote_ids" not in config:
            return self._engine_ids
        return config or None

    def new_req_logits_processor(self, params: Any) -> Callable[[list[int], torch.Tensor], torch.Tensor] | None:
        config = self._config(params)
        if not config:
            return None
        quote_ids = frozenset(int(i) for i in config["quote_ids"])
        close_string, close_array = int(config["close_string"]), int(config["close_array"])

        def guard(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            period = loop_period(output_ids)
            if period is None:
                return logits
            unit = output_ids[-period:]
            target = close_array if quote_ids.intersection(unit) else close_string
            if not torch.isfinite(logits[target]):
                return logits  # the grammar does not allow it here; look again at the next token
            forced = torch.full_like(logits, float("-inf"))
            forced[target] = 0.0
            return forced

        return guard
