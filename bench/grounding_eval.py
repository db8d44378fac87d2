"""Grounding rate of a profile on the CUAD contracts (and other contracts) in ../shared/corpus that fit its window.

One engine, every contract in one batch, contract template, greedy decoding. For each document: status, how many
values came with a quote, how many quotes were found in the document (exact / normalised / fuzzy) and on the cited
page. The figure is about evidence, not correctness: a found quote can still support a wrong value.

    .venv/bin/python bench/grounding_eval.py [--profile embedded] [--json] [--save results.json]
    .venv/bin/python bench/grounding_eval.py --rescore results.json   # re-ground saved answers, no engine
    .venv/bin/python bench/grounding_eval.py --labels   # ground CUAD's human-selected excerpts, no engine

``--save`` keeps every document's validated answer, so a change to grounding can be scored on the very same
answers with ``--rescore`` (greedy decoding repeats them on one machine, but not across processors).
``--labels`` grounds what people quoted instead: every excerpt CUAD's annotators selected (``<omitted>`` splits
one into pieces) in the 12 CUAD contracts, against docanalyst's reading of the PDFs, without a cited page.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared/corpus/contracts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="write every document's answer to this JSON file")
    parser.add_argument("--rescore", type=Path, help="ground the answers saved by --save again (no engine)")
    parser.add_argument("--labels", action="store_true", help="ground CUAD's labelled excerpts (no engine)")
    args = parser.parse_args()
    if args.labels:
        print(json.dumps(labels()) if args.json else labels())
        return
    if args.rescore:
        report(rescore(args.rescore), args)
        return

    from docanalyst.config import Settings
    from docanalyst.errors import BudgetError, DocanalystError
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
            except DocanalystError as exc:  # e.g. a read past --read-timeout on a busy machine: say so, go on
                print(f"not read: {exc}", file=sys.stderr)
        outcomes = analyzer.extract(fitting, options)
        analyzer.close()
    if args.save:
        saved = [{"path": o.path, "status": o.status, "result": o.result} for o in outcomes]
        args.save.write_text(json.dumps({"profile": args.profile, "too_long": too_long, "outcomes": saved}))
    scored = [(o.path, o.status, o.document.page_count if o.document else None, o.fields) for o in outcomes]
    report(summarise_rows(scored, args.profile, len(too_long)), args)


def rescore(saved_path: Path) -> dict[str, Any]:
    """Ground saved answers against freshly read documents with the grounding code of today."""
    from docanalyst.grounding import ground
    from docanalyst.isolation import load_pdf_isolated

    saved = json.loads(saved_path.read_text())
    scored = []
    for item in saved["outcomes"]:
        document = load_pdf_isolated(item["path"], timeout_s=300)
        fields = ground(document, item["result"]) if item["result"] else []
        scored.append((item["path"], item["status"], document.page_count, fields))
    return summarise_rows(scored, saved["profile"], len(saved["too_long"]))


def labels() -> dict[str, Any]:
    """Levels at which CUAD's labelled excerpts are found in the PDFs as docanalyst reads them."""
    import ast

    from docanalyst.grounding import DocumentIndex
    from docanalyst.pdf import load_pdf

    levels: collections.Counter[str] = collections.Counter()
    for row in json.loads((CORPUS / "cuad/ground_truth_selected.json").read_text()):
        # No table budget: the text must not depend on how busy the machine is.
        index = DocumentIndex(load_pdf(CORPUS / "cuad/pdf" / row["pdf"], table_budget_s=None))
        for column, cell in row.items():
            if column.endswith("-Answer") or column in ("Filename", "pdf", "txt") or not str(cell).startswith("["):
                continue
            for excerpt in ast.literal_eval(cell):
                for piece in str(excerpt).split("<omitted>"):
                    if len(piece.strip()) >= 3:
                        levels[index.locate(piece, None).status] += 1
    return dict(levels)


def summarise_rows(scored: list[tuple[str, str, int | None, list[Any]]], profile: str, too_long: int) -> dict[str, Any]:
    from docanalyst.grounding import summarise

    rows, levels = [], collections.Counter()
    total = {"quotes": 0, "found": 0, "on_cited_page": 0}
    for path, status, pages, fields in scored:
        g = summarise(fields)
        levels.update(f.status for f in fields if f.status != "no_quote")
        for key in total:
            total[key] += getattr(g, key)
        rows.append({"document": Path(path).name[:60], "pages": pages, "status": status, **g.as_dict()})
    rate = total["found"] / total["quotes"] if total["quotes"] else None
    return {"profile": profile, "documents": len(scored), "too_long": too_long, **total,
            "grounding_rate": round(rate, 4) if rate is not None else None,
            "levels": dict(levels), "rows": rows}  # fmt: skip


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    rows, total, levels = summary["rows"], summary, summary["levels"]
    rate = summary["grounding_rate"]
    if args.json:
        print(json.dumps(summary))
        return
    print(f"profile {summary['profile']}: {summary['documents']} contracts fit, {summary['too_long']} too long")
    for r in rows:
        print(f"  {r['document']:<62} {r['pages']:>3} p  {r['status']:<9} quotes {r['quotes']:>2}"
              f"  found {r['found']:>2}  on cited page {r['on_cited_page']:>2}")  # fmt: skip
    print(f"  total: {total['found']} of {total['quotes']} quotes found ({rate:.1%}), {total['on_cited_page']} on the "
          f"cited page; levels {dict(levels)}")  # fmt: skip


if __name__ == "__main__":
    main()
