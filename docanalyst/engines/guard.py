"""The repetition guard: a vLLM logits processor that ends a loop the moment it is seen.

A small model decoding greedily can fall into a loop: the same few tokens inside one string ("Northwind
Northwind Northwind …"), or the same list item again and again. The schema bounds every string and list, so a
loop cannot run past the reserve, but on a CPU it still burns hundreds of tokens at a few tokens a second. The
guard watches each request's output and, once its tail repeats a unit three times, forces the token that ends
the loop: the closing ``"`` when the unit holds no quote character (the loop is inside one string), else the
closing ``]`` (the loop is a repeated list item). It only ever picks a token the grammar allows at that point,
and it changes nothing while there is no loop, so answers without a loop are the same with or without it.

Part of the engine layer: vLLM loads this class by name (``base.GUARD_CLASS``) in its engine process
(``LLM(logits_processors=…)``), and a request opts in through ``SamplingParams.extra_args[GUARD_KEY]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from docanalyst.engines.base import GUARD_KEY

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

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token greedy decoding picks

    def new_req_logits_processor(self, params: Any) -> Callable[[list[int], torch.Tensor], torch.Tensor] | None:
        config = (params.extra_args or {}).get(GUARD_KEY)
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
