"""CPU benchmark: docanalyst's PDF -> document against raw PyMuPDF, and exact token counting.

Prints ratios measured in this one run (medians of N repeats, interleaved so machine noise hits both sides):

    .venv/bin/python bench/pdf_bench.py [PDF] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

DEFAULT_PDF = Path(__file__).resolve().parents[2] / "shared/corpus/long/The-Art-of-Public-Speaking.pdf"


def raw_pymupdf(path: Path) -> int:
    import pymupdf

    with pymupdf.open(path) as doc:
        return sum(len(page.get_text("text")) for page in doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdf", nargs="?", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    from docanalyst.config import Settings
    from docanalyst.models import EMBEDDED_DIR
    from docanalyst.pdf import load_pdf
    from docanalyst.prompting import build_prompt, load_template
    from docanalyst.tokenization import estimate_tokenizer, model_tokenizer

    raw_s, ours_s, ours_notables_s = [], [], []
    document = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        raw_chars = raw_pymupdf(args.pdf)
        raw_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        load_pdf(args.pdf, tables=False)
        ours_notables_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        document = load_pdf(args.pdf)
        ours_s.append(time.perf_counter() - t)
    assert document is not None
    pages = document.page_count

    folder = Settings.from_env().models_dir / EMBEDDED_DIR
    exact = model_tokenizer(folder)
    estimate = estimate_tokenizer()
    template = load_template("contract")
    exact_s, estimate_s, prompt_s = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        n_exact = exact.count(document.text)
        exact_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_est = estimate.count(document.text)
        estimate_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        prompt = build_prompt(document, template, exact)
        prompt_s.append(time.perf_counter() - t)

    med = statistics.median
    result = {
        "pdf": args.pdf.name,
        "pages": pages,
        "chars": document.char_count,
        "raw_chars": raw_chars,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "raw_get_text_s": med(raw_s),
        "docanalyst_s": med(ours_s),
        "docanalyst_no_tables_s": med(ours_notables_s),
        "raw_pages_per_s": pages / med(raw_s),
        "docanalyst_pages_per_s": pages / med(ours_s),
        "docanalyst_no_tables_pages_per_s": pages / med(ours_notables_s),
        "ratio_docanalyst_vs_raw": med(raw_s) / med(ours_s),
        "ratio_no_tables_vs_raw": med(raw_s) / med(ours_notables_s),
        "tables_found": sum(p.tables for p in document.pages),
        "exact_tokens": n_exact,
        "exact_count_s": med(exact_s),
        "exact_tokenizer": exact.name,
        "estimate_tokens": n_est,
        "estimate_count_s": med(estimate_s),
        "estimate_tokenizer": estimate.name,
        "prompt_tokens": prompt.tokens,
        "build_prompt_s": med(prompt_s),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.pdf.name}: {pages} pages, {document.char_count:,} characters (median of {args.repeats})")
    print(f"  raw PyMuPDF get_text      {result['raw_get_text_s']:7.2f} s  {result['raw_pages_per_s']:7.1f} pages/s")
    print(
        f"  docanalyst, tables off    {result['docanalyst_no_tables_s']:7.2f} s  "
        f"{result['docanalyst_no_tables_pages_per_s']:7.1f} pages/s  ({result['ratio_no_tables_vs_raw']:.2f}x raw)"
    )
    print(
        f"  docanalyst (default)      {result['docanalyst_s']:7.2f} s  {result['docanalyst_pages_per_s']:7.1f} pages/s"
        f"  ({result['ratio_docanalyst_vs_raw']:.2f}x raw; {result['tables_found']} tables)"
    )
    print(f"  exact tokens ({exact.name}): {n_exact:,} in {result['exact_count_s']:.2f} s")
    print(
        f"  estimate ({estimate.name}): {n_est:,} in {result['estimate_count_s']:.2f} s "
        f"({n_est / n_exact:.2f}x the exact count)"
    )
    print(
        f"  whole prompt built and tokenised (contract): {prompt.tokens:,} tokens in {result['build_prompt_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
