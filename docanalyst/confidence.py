"""A confidence in [0, 1] for every extracted value, from the probabilities of the tokens that wrote it.

The engine returns, for every token it generated, the token's text and its log-probability (one number a
token: ``SamplingParams(logprobs=0)``). The answer is compact JSON (no free whitespace), so the decoded tokens,
laid end to end, are the answer's text: each token covers a known character range of it. Each cited value's
JSON literal (``"Acme Corp"`` with its quotes, or ``null``) is located in that text with a small
position-keeping reader, and the tokens that overlap the literal are the value's tokens. A token that
straddles the literal's edge counts: ``":"`` carries the choice between a string and ``null``, and ``","``
the choice to end the string here. These are the value's real decisions.

Aggregation: **the smallest token probability over the value's tokens** (``min``). Most tokens of a value
are copied from the document and come out at ~1.0; what makes a value wrong is the one uncertain choice (which
date, where the name ends). A geometric mean (``mean``) dilutes that choice in the sure tokens, so a long
value scores high however doubtful its one decision; a product punishes length itself. A ``null`` value's
score is the probability of the token(s) that wrote ``null``: how sure the model was that the document does
not say. ``docs/EVALUATION.md`` records how ``min`` and ``mean`` compared on CUAD labels.

The log-probabilities are vLLM's ``raw_logprobs`` (engines/vllm.py says why): the model's own distribution
over the tokens the JSON grammar allows, before the repetition penalty and the repetition guard change it.

Partial answers work the same: salvage.py keeps complete fields of a cut-off answer, and their literals are
complete in the raw text; a value the reader cannot reach (after the cut) simply has no score.

Pure: no engine, no tokenizer, no adapter; the engine layer supplies the token texts and log-probabilities.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
from collections.abc import Iterator, Sequence
from typing import Literal

Aggregation = Literal["min", "mean"]
AGGREGATIONS: tuple[Aggregation, ...] = ("min", "mean")  # each evaluation compares them on its labels
DEFAULT_AGGREGATION: Aggregation = "min"
_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"


class _Cut(Exception):
    """The text ends (or breaks) before the value being read is complete."""


def token_offsets(text: str, token_texts: Sequence[str]) -> list[tuple[int, int]]:
    """The character range of ``text`` each token covers.

    Normally the tokens joined are the text and the ranges follow by adding lengths. When they are not (a
    character split over two tokens decoded differently on its own, a stop string cut from the text), the
    joined tokens are aligned to the text and every token is moved onto the text characters it matches.
    """
    joined = "".join(token_texts)
    ends: list[int] = []
    at = 0
    for piece in token_texts:
        at += len(piece)
        ends.append(at)
    starts = [end - len(piece) for end, piece in zip(ends, token_texts, strict=True)]
    if joined.startswith(text):  # the usual case; a special token at the end (EOS) is text the answer omits
        return [(min(s, len(text)), min(e, len(text))) for s, e in zip(starts, ends, strict=True)]
    where = [-1] * (len(joined) + 1)  # joined offset -> text offset, where the two agree
    for block in difflib.SequenceMatcher(None, joined, text, autojunk=False).get_matching_blocks():
        for k in range(block.size + 1):
            where[block.a + k] = block.b + k
    last = 0
    for i in range(len(where)):  # unmatched characters take the position of the last matched one
        if where[i] < 0:
            where[i] = last
        last = where[i]
    return [(where[s], max(where[s], where[e])) for s, e in zip(starts, ends, strict=True)]


def value_spans(text: str) -> dict[str, tuple[int, int]]:
    """For every object with a ``value`` member, the character range of that value's literal in ``text``,
    keyed by the same field path ``schemas.iter_cited`` gives ("parties[1]", "term"). Values after the point
    where a truncated text breaks are absent."""
    spans: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(_Cut):  # a cut-off answer: the spans read before the cut stand
        _read(text, _skip(text, 0), "", spans)
    return spans


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _read(text: str, i: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    """Read the JSON value at ``text[i]``, note the spans of cited values inside it; returns its end."""
    if i >= len(text):
        raise _Cut
    if text[i] == "{":
        return _read_object(text, i, path, spans)
    if text[i] == "[":
        return _read_list(text, i, path, spans)
    try:
        _, end = _DECODER.raw_decode(text, i)
    except ValueError as exc:
        raise _Cut from exc
    return int(end)


def _read_object(text: str, i: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    i = _skip(text, i + 1)
    while i < len(text) and text[i] != "}":
        try:
            key, i = _DECODER.raw_decode(text, i)
        except ValueError as exc:
            raise _Cut from exc
        i = _skip(text, i)
        if not isinstance(key, str) or not text.startswith(":", i):
            raise _Cut
        start = _skip(text, i + 1)
        end = _read(text, start, f"{path}.{key}" if path else key, spans)
        if key == "value":
            spans[path] = (start, end)
        i = _skip(text, end)
        if text.startswith(",", i):
            i = _skip(text, i + 1)
    if i >= len(text):
        raise _Cut
    return i + 1


def _read_list(text: str, i: int, path: str, spans: dict[str, tuple[int, int]]) -> int:
    i = _skip(text, i + 1)
    index = 0
    while i < len(text) and text[i] != "]":
        i = _skip(text, _read(text, i, f"{path}[{index}]", spans))
        index += 1
        if text.startswith(",", i):
            i = _skip(text, i + 1)
    if i >= len(text):
        raise _Cut
    return i + 1


def covering(offsets: Sequence[tuple[int, int]], start: int, end: int) -> Iterator[int]:
    """Indices of the tokens whose range overlaps ``[start, end)``."""
    for k, (s, e) in enumerate(offsets):
        if s < end and e > start:
            yield k


def aggregate(logprobs: Sequence[float], how: Aggregation = DEFAULT_AGGREGATION) -> float | None:
    """One score in [0, 1] from the log-probabilities of a value's tokens: the least probable token's
    probability (``min``) or the geometric mean of their probabilities (``mean``); None for no tokens."""
    if not logprobs:
        return None
    worst = min(logprobs) if how == "min" else sum(logprobs) / len(logprobs)
    if math.isnan(worst):
        return None
    return min(1.0, max(0.0, math.exp(worst)))


def field_confidences(
    text: str,
    token_texts: Sequence[str] | None,
    token_logprobs: Sequence[float] | None,
    how: Aggregation = DEFAULT_AGGREGATION,
) -> dict[str, float]:
    """The confidence of every cited value in the answer ``text``, by field path; empty when the engine gave
    no log-probabilities (an engine without them, or runs stored before there were any)."""
    if not token_texts or not token_logprobs or len(token_texts) != len(token_logprobs):
        return {}
    offsets = token_offsets(text, token_texts)
    scores: dict[str, float] = {}
    for path, (start, end) in value_spans(text).items():
        score = aggregate([token_logprobs[k] for k in covering(offsets, start, end)], how)
        if score is not None:
            scores[path] = round(score, 6)
    return scores


def pack(token_texts: Sequence[str] | None, token_logprobs: Sequence[float] | None) -> str | None:
    """The tokens of an answer as stored with its run (``runs.token_logprobs_json``), so that a stored run can be
    scored again with another aggregation; log-probabilities rounded to 6 places (a probability to ~1e-6)."""
    if not token_texts or not token_logprobs or len(token_texts) != len(token_logprobs):
        return None
    rounded = [round(lp, 6) if math.isfinite(lp) else -1e9 for lp in token_logprobs]
    return json.dumps({"tokens": list(token_texts), "logprobs": rounded}, ensure_ascii=False)


def unpack(stored: str | None) -> tuple[list[str], list[float]] | None:
    """``pack``'s inverse; None for runs stored without tokens."""
    if not stored:
        return None
    data = json.loads(stored)
    return [str(t) for t in data["tokens"]], [float(lp) for lp in data["logprobs"]]


def below(confidence: float | None, minimum: float | None) -> bool:
    """Whether a value falls under ``--min-confidence``: a value without a score (a run stored before scores
    existed) is never hidden, since nothing says it is doubtful."""
    return minimum is not None and confidence is not None and confidence < minimum
