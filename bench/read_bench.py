"""Reading one PDF serially and in parallel page workers, with the table pre-filter on and off (issue 15).

    python bench/read_bench.py PDF [--repeat 3] [--workers N] [--json OUT]

Prints the median wall time of ``load_pdf`` over ``--repeat`` runs (one process, after one warm-up read that
loads PyMuPDF's layout model) for: serial; parallel (one process per core, or ``--workers``); serial without
tables; and serial with the old pre-filter (a rule counted twice, as before issue 15). Also how many pages the
pre-filter sends to ``find_tables`` (old and new) and whether the parallel Document equals the serial one.
No dependency beyond docanalyst's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docanalyst import page_workers, pdf


def _old_may_hold_table(page: Any) -> bool:
    """The pre-filter before issue 15: every line and each rectangle edge counted, duplicates included."""
    horizontal = vertical = 0
    for drawing in page.get_cdrawings():
        for item in drawing["items"]:
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
                horizontal += abs(y0 - y1) < 1 and abs(x0 - x1) > 5
                vertical += abs(x0 - x1) < 1 and abs(y0 - y1) > 5
            elif item[0] == "re":
                rect = pdf.pymupdf.Rect(item[1])
                horizontal += 2 if rect.width > 5 else 0
                vertical += 2 if rect.height > 5 else 0
    return horizontal >= 3 or (horizontal >= 2 and vertical >= 2)


def _median(read: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = read()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def _candidates(path: Path) -> dict[str, int]:
    doc = pdf.pymupdf.open(path)
    try:
        pages = [doc.load_page(i) for i in range(doc.page_count)]
        return {
            "pages": doc.page_count,
            "table_candidates_old": sum(_old_may_hold_table(p) for p in pages),
            "table_candidates_new": sum(pdf._may_hold_table(p) for p in pages),
        }
    finally:
        doc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="processes for the parallel read (default: auto)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args()
    path, repeat = args.pdf, max(1, args.repeat)
    workers = args.workers or page_workers.available_cores()  # one per core (auto reads serially below 3 cores)
    pdf.load_pdf(path, workers=1)  # warm-up: the layout model, the OS file cache
    serial_s, serial_runs, serial = _median(lambda: pdf.load_pdf(path, workers=1), repeat)
    parallel_s, parallel_runs, parallel = _median(lambda: pdf.load_pdf(path, workers=workers), repeat)
    no_tables_s, _, _ = _median(lambda: pdf.load_pdf(path, workers=1, tables=False), repeat)
    no_tables_par_s, _, _ = _median(lambda: pdf.load_pdf(path, workers=workers, tables=False), repeat)
    new_filter = pdf._may_hold_table
    pdf._may_hold_table = _old_may_hold_table  # type: ignore[assignment]
    try:
        old_filter_s, _, _ = _median(lambda: pdf.load_pdf(path, workers=1), repeat)
    finally:
        pdf._may_hold_table = new_filter
    figures = {
        "pdf": str(path),
        **_candidates(path),
        "host": {"cores": page_workers.available_cores(), "cpu_count": os.cpu_count(), "machine": platform.node()},
        "repeat": repeat,
        "workers": workers,
        "serial_s": round(serial_s, 3),
        "parallel_s": round(parallel_s, 3),
        "speedup": round(serial_s / parallel_s, 2),
        "serial_no_tables_s": round(no_tables_s, 3),
        "parallel_no_tables_s": round(no_tables_par_s, 3),
        "serial_old_prefilter_s": round(old_filter_s, 3),
        "serial_runs_s": [round(t, 3) for t in serial_runs],
        "parallel_runs_s": [round(t, 3) for t in parallel_runs],
        "parallel_equals_serial": parallel == serial,
    }
    for key, value in figures.items():
        print(f"{key:24} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
