"""CPU benchmark: many documents in one engine call (batch) against one call per document.

The engine is loaded once and shared by both; the prefix cache is reset before every measurement so neither
side reuses the other's work; runs alternate (batch, one-by-one, batch, ...) and medians are reported.

    .venv/bin/python bench/batch_bench.py [--repeats 3] [--template generic] [PDF ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUAD = ROOT.parent / "shared/corpus/contracts/cuad/pdf"
DEFAULT = [
    *sorted((ROOT / "samples").glob("*.pdf")),
    CUAD / "EcoScienceSolutionsInc_20171117_8-K_EX-10.1_10956472_EX-10.1_Endorsement Agreement.pdf",
    ROOT.parent / "shared/corpus/contracts/other/CC_License_Agreement_of_siMPle.pdf",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdfs", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--template", default="generic")
    args = parser.parse_args()

    from docanalyst.config import Settings
    from docanalyst.engines import EnginePool, VllmEngine
    from docanalyst.models import EMBEDDED_DIR
    from docanalyst.pipeline import Analyzer, ExtractOptions
    from docanalyst.profiles import get_profile

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(settings, db_url=f"sqlite:///{tmp}/bench.db")
        t0 = time.perf_counter()
        engine = VllmEngine(get_profile("embedded"), settings.models_dir / EMBEDDED_DIR)
        start_s = time.perf_counter() - t0
        analyzer = Analyzer(settings, pool=EnginePool(settings, lambda profile, ref: engine))
        options = ExtractOptions(template=args.template, profile="embedded", force=True)
        analyzer.extract(args.pdfs[:1], options)  # warm-up (first-call costs), not measured
        batch_s, single_s, statuses = [], [], []
        out_tokens = {"batch": [], "single": []}  # type: dict[str, list[int]]
        for _ in range(args.repeats):
            engine.llm.reset_prefix_cache()
            t = time.perf_counter()
            outcomes = analyzer.extract(args.pdfs, options)
            batch_s.append(time.perf_counter() - t)
            out_tokens["batch"].append(sum(o.usage.get("completion_tokens", 0) for o in outcomes))
            statuses.append([o.status for o in outcomes])
            engine.llm.reset_prefix_cache()
            t = time.perf_counter()
            singles = [analyzer.extract([p], options)[0] for p in args.pdfs]
            single_s.append(time.perf_counter() - t)
            out_tokens["single"].append(sum(o.usage.get("completion_tokens", 0) for o in singles))
        engine.close()
    med = statistics.median
    result = {
        "documents": len(args.pdfs),
        "pages": sum(o.document.page_count for o in outcomes if o.document),
        "template": args.template,
        "repeats": args.repeats,
        "engine_start_s": round(start_s, 1),
        "batch_s": [round(x, 2) for x in batch_s],
        "one_by_one_s": [round(x, 2) for x in single_s],
        "median_batch_s": round(med(batch_s), 2),
        "median_one_by_one_s": round(med(single_s), 2),
        "speedup": round(med(single_s) / med(batch_s), 3),
        "output_tokens": out_tokens,
        "statuses": statuses[-1],
    }
    print(json.dumps(result))
    print(
        f"{result['documents']} documents ({result['pages']} pages, template {args.template}), median of "
        f"{args.repeats}: batch {result['median_batch_s']} s, one by one {result['median_one_by_one_s']} s, "
        f"speed-up {result['speedup']}x (engine start {result['engine_start_s']} s, not counted)"
    )


if __name__ == "__main__":
    main()
