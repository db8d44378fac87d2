"""CPU benchmark: what returning token log-probabilities (confidence.py) costs generation.

The pipeline builds its request (a scripted engine records it, no model needed); the very same request is then
sent to one real engine with log-probabilities on and off, alternating (on, off, on, ...), and medians are
reported. The prefix cache stays warm after the first call, so the measured time is mostly decoding, where a
per-token cost would show; ``--max-tokens`` caps the answer (the cost is per token: a shorter answer measures it
in less time on a busy machine). Greedy decoding: both sides must write the same answer (checked).

It also prints what the engine returned: whether the token texts laid end to end are the answer's text, and
the probabilities of tokens the JSON grammar forces (a key name): 1.0 if the log-probabilities are taken after
the grammar's mask.

    .venv/bin/python bench/logprobs_bench.py [--repeats 5] [--max-tokens 0] [--template contract] [PDF]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "samples/northwind-bluefin-services-agreement.pdf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdf", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--template", default="contract")
    parser.add_argument("--max-tokens", type=int, default=0, help="cap the answer (0: the pipeline's own cap)")
    args = parser.parse_args()

    from docanalyst.config import Settings
    from docanalyst.engines import EnginePool, FakeEngine, VllmEngine
    from docanalyst.models import EMBEDDED_DIR
    from docanalyst.pipeline import Analyzer, ExtractOptions
    from docanalyst.profiles import get_profile

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(settings, db_url=f"sqlite:///{tmp}/bench.db")
        fake = FakeEngine(get_profile("embedded"), [("{}", "stop")])
        analyzer = Analyzer(settings, pool=EnginePool(settings, lambda profile, ref: fake))
        analyzer.extract([args.pdf], ExtractOptions(template=args.template, profile="embedded", force=True))
        request = fake.requests[0]
        if args.max_tokens:
            request = replace(request, max_tokens=min(request.max_tokens, args.max_tokens))
        engine = VllmEngine(get_profile("embedded"), settings.models_dir / EMBEDDED_DIR)
        probe = engine.generate([request])[0]
        describe(probe)
        times: dict[bool, list[float]] = {True: [], False: []}
        decode: dict[bool, list[float]] = {True: [], False: []}
        texts: dict[bool, set[str]] = {True: set(), False: set()}
        for _ in range(args.repeats):
            for on in (True, False):
                t = time.perf_counter()
                result = engine.generate([replace(request, logprobs=on)])[0]
                times[on].append(time.perf_counter() - t)
                decode[on].append(result.decode_tokens_per_s or 0.0)
                texts[on].add(result.text)
                print(f"logprobs {'on ' if on else 'off'}: {times[on][-1]:.2f} s", flush=True)
        engine.close()
    report = {
        "document": args.pdf.name,
        "max_tokens": request.max_tokens,
        "output_tokens": probe.completion_tokens,
        "same_answer": texts[True] == texts[False] and len(texts[True]) == 1,
        **{f"{'on' if on else 'off'}_s": [round(t, 3) for t in times[on]] for on in (True, False)},
        **{f"median_{'on' if on else 'off'}_s": round(statistics.median(times[on]), 3) for on in (True, False)},
        **{f"decode_tok_s_{'on' if on else 'off'}": round(statistics.median(decode[on]), 2) for on in (True, False)},
    }
    report["cost"] = round(report["median_on_s"] / report["median_off_s"] - 1, 4)
    print(json.dumps(report, indent=2))


def describe(result: Any) -> None:
    """What the engine returned with log-probabilities on."""
    texts, logprobs = result.token_texts, result.token_logprobs
    assert texts is not None and logprobs is not None
    joined = "".join(texts)
    print(f"finish {result.finish_reason}, tokens {result.completion_tokens}, logprobs {len(logprobs)}", flush=True)
    print(f"joined == text: {joined == result.text}; joined ends with {joined[len(result.text) :]!r}")
    at, shown = 0, 0
    for piece, lp in zip(texts, logprobs, strict=True):
        if (piece in ('"quote', '":"', "quote", '"page', "page") or at == 0) and shown < 6:
            print(f"  forced-looking token {piece!r} at {at}: p={math.exp(lp):.6f}", flush=True)
            shown += 1
        at += len(piece)
    low = sorted(zip(logprobs, range(len(texts)), strict=True))[:8]
    for lp, k in low:
        context = "".join(texts[max(0, k - 6) : k + 3])
        print(f"  least sure token #{k} {texts[k]!r}: p={math.exp(lp):.4f} context {context!r}", flush=True)


if __name__ == "__main__":
    main()
