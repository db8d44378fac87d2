"""Grounding rate of a profile on the CUAD contracts (and other contracts) in ../shared/corpus that fit its window.

One engine, every contract in one batch, contract template, greedy decoding. For each document: status, how many
values came with a quote, how many quotes were found in the document (exact / normalised / fuzzy) and on the cited
page. The figure is about evidence, not correctness: a found quote can still support a wrong value.

    .venv/bin/python bench/grounding_eval.py [--profile embedded] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared/corpus/contracts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from docanalyst.config import Settings
    from docanalyst.errors import BudgetError
    from docanalyst.grounding import summarise
    from docanalyst.pipeline import Analyzer, ExtractOptions

    candidates = sorted((CORPUS / "cuad/pdf").iterdir()) + sorted((CORPUS / "other").glob("*.pdf"))
    with tempfile.TemporaryDirectory() as tmp:
        analyzer = Analyzer(replace(Settings.from_env(), db_url=f"sqlite:///{tmp}/eval.db"))
        options = ExtractOptions(template="contract", profile=args.profile, force=True)
        fitting, too_long = [], []
        for path in candidates:
            try:
                analyzer.prepare(path, options)
                fitting.append(path)
            except BudgetError:
                too_long.append(path.name)
        outcomes = analyzer.extract(fitting, options)
        analyzer.close()
    rows, levels = [], collections.Counter()
    total = {"quotes": 0, "found": 0, "on_cited_page": 0}
    for o in outcomes:
        g = summarise(o.fields)
        levels.update(f.status for f in o.fields if f.status != "no_quote")
        for key in total:
            total[key] += getattr(g, key)
        rows.append({"document": Path(o.path).name[:60], "pages": o.document.page_count if o.document else None,
                     "status": o.status, **g.as_dict()})  # fmt: skip
    rate = total["found"] / total["quotes"] if total["quotes"] else None
    summary = {"profile": args.profile, "documents": len(fitting), "too_long": len(too_long), **total,
               "grounding_rate": round(rate, 4) if rate is not None else None,
               "levels": dict(levels), "rows": rows}  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return
    print(f"profile {args.profile}: {len(fitting)} contracts fit, {len(too_long)} too long")
    for r in rows:
        print(f"  {r['document']:<62} {r['pages']:>3} p  {r['status']:<9} quotes {r['quotes']:>2}"
              f"  found {r['found']:>2}  on cited page {r['on_cited_page']:>2}")  # fmt: skip
    print(f"  total: {total['found']} of {total['quotes']} quotes found ({rate:.1%}), {total['on_cited_page']} on the "
          f"cited page; levels {dict(levels)}")  # fmt: skip


if __name__ == "__main__":
    main()
