"""Grounding before and after support.py (too-short and unsupported quotes), on the corpus. No engine.

Three sets, each grounded twice: *before* (where the quote is: grounding's levels alone, as every run until
issue 17 was scored) and *after* (the same location, then support.py's informative and supports rules):

1. **CUAD, genuine pairs**: each labelled answer of the 12 CUAD contracts (a date, a name, a law, a term) with the
   excerpts CUAD's annotators selected for it. These are real evidence: every one that *after* rejects is a false
   alarm, and the rate says how strict the rules are.
2. **CUAD, swapped values**: the same excerpts with the answer of the same column from another contract (another
   date, another party): fake evidence that *before* accepts whenever the quote is found. The rate *after* rejects
   is what the rules catch.
3. **The embedded model's stored answers** (``bench/results/2026-12-02-first-run-cpu.json``: the sample contract
   and NDA, and two CUAD contracts, default settings): what a user saw, re-scored.

    .venv/bin/python bench/support_eval.py [--json]
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CUAD = ROOT.parent / "shared/corpus/contracts/cuad"
STORED = ROOT / "bench/results/2026-12-02-first-run-cpu.json"
SKIP_ANSWERS = {"", "yes", "no", "[]"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    report = {"cuad": cuad_pairs(), "stored_answers": stored_answers()}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for name, part in report.items():
        print(f"== {name}")
        for key, value in part.items():
            print(f"  {key}: {value}")


def cuad_pairs() -> dict[str, Any]:
    from docanalyst.grounding import DocumentIndex
    from docanalyst.pdf import load_pdf

    rows = json.loads((CUAD / "ground_truth_selected.json").read_text())
    answers: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)  # column -> [(pdf, answer)]
    for row in rows:
        for column, answer in row.items():
            if column.endswith("-Answer") and str(answer).strip().casefold() not in SKIP_ANSWERS:
                answers[column.removesuffix("-Answer")].append((row["pdf"], str(answer)))
    genuine: collections.Counter[str] = collections.Counter()
    swapped: collections.Counter[str] = collections.Counter()
    alarms: list[str] = []
    for row in rows:
        index = DocumentIndex(load_pdf(CUAD / "pdf" / row["pdf"], table_budget_s=None))
        for column, pairs in answers.items():
            mine = next((a for pdf, a in pairs if pdf == row["pdf"]), None)
            other = next((a for pdf, a in pairs if pdf != row["pdf"] and a != mine), None)
            quotes = _pieces(row.get(column, "[]"))
            if mine is None or not quotes:
                continue
            verdict = _best(index, quotes, mine)
            genuine[verdict] += 1
            if verdict.startswith("after rejects"):
                alarms.append(f"{row['pdf'][:40]} | {column}: {mine!r} <- {quotes[0][:70]!r}")
            if other is not None:
                swapped[_best(index, quotes, other)] += 1
    return {"genuine pairs": dict(genuine), "swapped values": dict(swapped), "false alarms (first 25)": alarms[:25]}


def _pieces(cell: str) -> list[str]:
    try:
        excerpts = ast.literal_eval(cell) if str(cell).startswith("[") else []
    except (ValueError, SyntaxError):
        return []
    return [p.strip() for e in excerpts for p in str(e).split("<omitted>") if len(p.strip()) >= 3]


def _best(index: Any, quotes: list[str], value: str) -> str:
    """How the best of the excerpts fares for this value, before and after the support rules."""
    found_before = False
    for quote in quotes:
        match = index.locate(quote, None)
        if not match.status.found:
            continue
        found_before = True
        if index.judge(match, quote, value).status.found:
            return "both accept"
    return "after rejects (before accepts)" if found_before else "neither finds the quote"


def stored_answers() -> dict[str, Any]:
    from docanalyst.grounding import DocumentIndex, summarise
    from docanalyst.pdf import load_pdf
    from docanalyst.schemas import iter_cited

    data = json.loads(STORED.read_text())
    out: dict[str, Any] = {}
    for variant, run in data["documents"].items():
        for item in run["documents"]:
            path = Path(item["document"]["path"])
            path = path if path.exists() else ROOT / "samples" / path.name
            if not path.exists() or not item.get("result"):
                continue
            index = DocumentIndex(load_pdf(path, table_budget_s=None))
            before: collections.Counter[str] = collections.Counter()
            after: collections.Counter[str] = collections.Counter()
            fields = []
            for p, cited in iter_cited(item["result"]):
                match = index.locate(cited["quote"], cited["page"]) if cited.get("quote") else None
                before[str(match.status) if match else "no_quote"] += 1
                judged = index.judge(match, cited.get("quote"), cited.get("value")) if match else None
                after[str(judged.status) if judged else "no_quote"] += 1
                fields.append(_field(p, cited, judged))
            verdict = summarise(fields).verdict
            out[f"{variant}: {path.name}"] = {"before": dict(before), "after": dict(after), "verdict": str(verdict)}
    return out


def _field(path: str, cited: dict[str, Any], match: Any) -> Any:
    from docanalyst.grounding import GroundedField
    from docanalyst.statuses import QuoteStatus

    status = match.status if match is not None else QuoteStatus.NO_QUOTE
    return GroundedField(path, cited.get("value"), cited.get("quote"), cited.get("page"), status)


if __name__ == "__main__":
    main()
