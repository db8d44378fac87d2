"""Reading a PDF in parallel page workers gives the Document a serial read gives (issue 15), and --no-tables.

The Document compares whole: every page's text, offsets, table count, OCR flag, the warnings, the metadata.
Workers are forced on (``workers=2``) whatever the page count, and the calling process is kept from reading
(``page_workers.CALLER_READS``), so that the worker's pages, their JSON and the merge are what is compared.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from docanalyst import cli, page_workers
from docanalyst.errors import DocanalystError
from docanalyst.pdf import load_pdf
from tests.conftest import CORPUS, CUAD

BOOK = CORPUS / "long" / "The-Art-of-Public-Speaking.pdf"
TABLES = CORPUS / "papers" / "science-parse" / "P14-1059.pdf"  # 10 pages, tables on pages 5-8
# A representative subset that reads in seconds: a contract, a paper with ruled tables, a broken file
# (a damaged stream: partial text and MuPDF warnings), one whose page tree fails on a page, and the 467-page book.
SAMPLES = [
    CUAD / "LIMEENERGYCO_09_09_1999-EX-10-DISTRIBUTOR AGREEMENT.PDF",
    TABLES,
    CORPUS / "robustness" / "qpdf" / "damaged-stream.pdf",
    CORPUS / "robustness" / "qpdf" / "hybrid-xref.pdf",
    CORPUS / "robustness" / "pdfjs" / "Pages-tree-refs.pdf",
    BOOK,
]


def _read(path: Path, workers: int) -> object:
    """The Document, or the error (class, message, page) a read of it raises."""
    try:
        return load_pdf(path, table_budget_s=None, workers=workers)
    except DocanalystError as exc:
        return (type(exc).__name__, exc.message, exc.page)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name[:24])
def test_parallel_read_equals_serial_read(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not path.exists():
        pytest.skip(f"corpus file missing: {path}")
    serial = _read(path, workers=1)
    monkeypatch.setattr(page_workers, "CALLER_READS", False)  # every page comes from the worker process
    assert _read(path, workers=2) == serial


def test_tables_are_found_where_they_were() -> None:
    """The drawings pre-filter keeps every page PyMuPDF finds a table on (pinned: 4 pages of this paper)."""
    document = load_pdf(TABLES, table_budget_s=None)
    assert [page.number for page in document.pages if page.tables] == [5, 6, 7, 8]
    assert not any(page.tables for page in load_pdf(TABLES, tables=False).pages)


def test_the_caller_reads_too_and_ranges_cover_the_document() -> None:
    assert page_workers.page_ranges(5, 1) == [(1, 5)]
    ranges = page_workers.page_ranges(467, 2)
    assert ranges[0][0] == 1 and ranges[-1][1] == 467
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert page_workers.worker_count(10) == 1  # a short document is read serially
    assert page_workers.worker_count(10, requested=4) == 4


def test_two_cores_read_serially(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below MIN_CORES_FOR_WORKERS the layout model already fills the cores: one process (measured 0.82x)."""
    monkeypatch.setattr(page_workers, "available_cores", lambda: 2)
    assert page_workers.worker_count(467) == 1
    monkeypatch.setattr(page_workers, "available_cores", lambda: 16)
    assert page_workers.worker_count(467) == 16
    assert page_workers.worker_count(100) == 4


def test_workers_die_with_their_parent() -> None:
    """A reader killed mid-read (its time limit, SIGKILL) leaves no page worker behind."""
    code = f"from docanalyst.pdf import load_pdf; load_pdf({str(BOOK)!r}, workers=3)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        workers: list[psutil.Process] = []
        for _ in range(600):
            workers = [p for p in psutil.Process(parent.pid).children() if "range_worker_main" in " ".join(p.cmdline())]
            if len(workers) == 2 or parent.poll() is not None:
                break
            time.sleep(0.05)
        assert len(workers) == 2, "the workers never started"
    finally:
        parent.kill()
        parent.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []


def test_no_tables_through_the_cli() -> None:
    """`tokens --no-tables` reads the document without table detection (another text: no Markdown tables)."""
    runner = CliRunner()
    with_tables = json.loads(runner.invoke(cli.app, ["tokens", "--json", str(TABLES)]).stdout)
    without = json.loads(runner.invoke(cli.app, ["tokens", "--json", "--no-tables", str(TABLES)]).stdout)
    assert with_tables["chars"] == load_pdf(TABLES).char_count
    assert without["chars"] == load_pdf(TABLES, tables=False).char_count != with_tables["chars"]
