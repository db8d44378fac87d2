"""Evidence by reference against quotes (issue 15, part 3): output tokens, decode time and grounding rate.

Every document is extracted twice on the same engine in the same process, once with ``--evidence quotes`` and once
with ``--evidence refs`` (the order alternates from one document to the next); a warm-up extraction first pays the
one-time costs. The two prompts differ (refs numbers the sentences), so neither mode reuses the other's prefix.
Medians over the documents are printed as a Markdown table and written to ``bench/results/`` as JSON.

    .venv/bin/python bench/evidence_bench.py [--profile embedded] [--template contract] [PDF ...]
    # on an H200: the tiny Qwen3-Next and the real architecture on dummy weights
    python bench/evidence_bench.py --profile qwen3-next-tiny
    python bench/evidence_bench.py --profile qwen3-next --engine-arg load_format=dummy

Decode time is the generation call's time minus the time to first token (prefill), when the engine reports it.
The grounding rate is the share of values with evidence whose evidence was located: a quote found (exact,
normalised, fuzzy) or ids that resolve (``cited``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CUAD = ROOT.parent / "shared/corpus/contracts/cuad/pdf"
DEFAULT = [  # the CUAD contracts that fit the embedded profile's 8,192-token window in both modes
    CUAD / "CENTRACKINTERNATIONALINC_10_29_1999-EX-10.3-WEB SITE HOSTING AGREEMENT.PDF",
    CUAD / "SPHERE3DCORP_06_24_2020-EX-10.12-CONSULTING AGREEMENT.PDF",
    CUAD / "EcoScienceSolutionsInc_20171117_8-K_EX-10.1_10956472_EX-10.1_Endorsement Agreement.pdf",
]
MODES = ("quotes", "refs")


def measure(outcome: Any) -> dict[str, Any]:
    """One extraction's figures (an Outcome of the pipeline)."""
    timings, usage = outcome.timings, outcome.usage
    generate_s = sum(v for k, v in timings.items() if k.startswith("generate_s_"))
    ttft = timings.get("ttft_s")
    fields = outcome.fields
    cited = [f for f in fields if f.status != "no_quote"]
    found = [f for f in cited if f.quote_found]
    return {
        "status": str(outcome.status),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "generate_s": round(generate_s, 3),
        "ttft_s": ttft,
        "decode_s": round(generate_s - ttft, 3) if ttft is not None else None,
        "decode_tok_s": timings.get("decode_tok_s"),
        "values": sum(f.value is not None for f in fields),
        "with_evidence": len(cited),
        "grounded": len(found),
        "grounding_rate": round(len(found) / len(cited), 4) if cited else None,
        "statuses": sorted({str(f.status) for f in fields}),
        "error": str(outcome.error) if outcome.error else None,
    }


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode, rows in runs.items():
        pooled = sum(r["with_evidence"] for r in rows)
        out[mode] = {
            key: median(rows, key)
            for key in ("prompt_tokens", "completion_tokens", "generate_s", "decode_s", "grounding_rate", "values")
        }
        out[mode]["grounding_pooled"] = round(sum(r["grounded"] for r in rows) / pooled, 4) if pooled else None
        out[mode]["ok"] = sum(r["status"] == "ok" for r in rows)
        out[mode]["documents"] = len(rows)
    return out


def table(result: dict[str, Any]) -> str:
    head = "| mode | ok | prompt tokens | output tokens | generate s | decode s | values | grounding (median/pooled) |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for mode, s in result["summary"].items():
        lines.append(
            f"| {mode} | {s['ok']}/{s['documents']} | {s['prompt_tokens']} | {s['completion_tokens']} | "
            f"{s['generate_s']} | {s['decode_s']} | {s['values']} | {s['grounding_rate']} / {s['grounding_pooled']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdfs", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--template", default="contract")
    parser.add_argument("--model", default=None, help="a model folder instead of the profile's")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the unmeasured first extraction")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: bench/results/)")
    args = parser.parse_args()

    from docanalyst.config import Settings, parse_engine_args
    from docanalyst.pipeline import Analyzer, ExtractOptions

    engine_args = parse_engine_args(args.engine_arg, source="--engine-arg")
    settings = Settings.from_env()
    settings = replace(settings, engine_args={**settings.engine_args, **engine_args})
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "profile": args.profile, "template": args.template,
        "engine_args": engine_args, "runs": runs,
    }  # fmt: skip
    out = args.out or ROOT / "bench/results" / f"{result['date']}-evidence-{args.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(settings, db_url=f"sqlite:///{tmp}/bench.db")
        analyzer = Analyzer(settings)
        try:
            base = ExtractOptions(template=args.template, profile=args.profile, model_path=args.model, force=True)
            t0 = time.perf_counter()
            if not args.no_warm_up:  # engine start and first-call costs, not measured
                analyzer.extract(args.pdfs[:1], replace(base, template="generic"))
            warm_s = time.perf_counter() - t0
            for i, pdf in enumerate(args.pdfs):
                for mode in MODES if i % 2 == 0 else MODES[::-1]:
                    [outcome] = analyzer.extract([pdf], replace(base, evidence=mode))
                    row = {"document": pdf.name, **measure(outcome)}
                    runs[mode].append(row)
                    print(mode, json.dumps(row), flush=True)
                    out.write_text(json.dumps({**result, "summary": summary(runs)}, indent=1))  # kept if stopped
        finally:
            analyzer.close()
    result.update(warm_up_s=round(warm_s, 1), summary=summary(runs))
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
