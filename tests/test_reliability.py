"""Reading in a child process: the same Document as in-process, the loader's own errors unchanged, and a file
that needs too much memory or too much time is stopped with one plain message instead of taking the machine.

The hostile files are generated here (never stored): a 22 KB PDF whose flate-compressed content stream expands
to 20 million characters of text (about 2 GB once MuPDF has extracted them), i.e. a decompression bomb aimed at
text extraction, only ever read under a cap; and a 400 KB PDF whose content stream expands to 400 MB of no-op
operators, slow to parse but light on memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from docanalyst import isolation
from docanalyst.errors import DamagedPdfError, EncryptedPdfError, NotAPdfError, PdfError
from docanalyst.isolation import PdfMemoryError, PdfTimeoutError, load_pdf_isolated
from docanalyst.pdf import load_pdf

from conftest import CORPUS, SAMPLE_CONTRACT, pdf_from_objects

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS memory caps are a Linux feature")


def raw_pdf(stream: bytes, resources: bytes = b"<< /Font << /F1 5 0 R >> >>") -> bytes:
    """A one-page PDF with this flate-compressed content stream and a Helvetica font, xref and all."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources " + resources + b" >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_from_objects(objects)


def text_bomb(folder: Path, million_chars: int = 20) -> Path:
    """Lines of 50,000 tiny characters, all inside the page, so text extraction must keep every one."""
    line = b"(" + b"A" * 50_000 + b") '\n"
    content = b"BT /F1 0.01 Tf 0.01 TL 1 0 0 1 10 780 Tm\n" + line * (million_chars * 20) + b"ET"
    path = folder / "bomb.pdf"
    path.write_bytes(raw_pdf(zlib.compress(content, 9)))
    return path


def time_bomb(folder: Path) -> Path:
    """A 400 KB PDF whose content stream expands to 400 MB of 'q Q' (save, restore): about 15 s of parsing for
    MuPDF on this machine, little memory."""
    compressor = zlib.compressobj(9)
    chunk = b"q Q\n" * 250_000
    stream = b"".join(compressor.compress(chunk) for _ in range(400)) + compressor.flush()
    path = folder / "slow.pdf"
    path.write_bytes(raw_pdf(stream))
    return path


def test_isolated_read_gives_the_same_document() -> None:
    assert load_pdf_isolated(SAMPLE_CONTRACT) == load_pdf(SAMPLE_CONTRACT)
    locked = CORPUS / "robustness/pdfjs/issue21579.pdf"  # AES-256, non-ASCII password
    assert load_pdf_isolated(locked, "pässwört") == load_pdf(locked, "pässwört")
    scan = load_pdf_isolated(CORPUS / "robustness/pdfjs/issue7200.pdf", ocr=False)  # options pass through
    assert scan.pages_without_text == [1] and "OCR not run on page 1: OCR is turned off" in scan.warnings


def test_loader_errors_cross_the_process_boundary_unchanged(tmp_path) -> None:
    cases = [
        (CORPUS / "robustness/qpdf/bad1.pdf", None, NotAPdfError),
        (CORPUS / "robustness/pdfjs/Pages-tree-refs.pdf", None, DamagedPdfError),
        (CORPUS / "robustness/pdfjs/issue6010_1.pdf", "wrong", EncryptedPdfError),
        (tmp_path / "missing.pdf", None, NotAPdfError),
    ]
    for path, password, kind in cases:
        with pytest.raises(kind) as direct:
            load_pdf(path, password)
        with pytest.raises(kind) as isolated:
            load_pdf_isolated(path, password)
        assert str(isolated.value) == str(direct.value)
        assert isolated.value.page == direct.value.page and isolated.value.exit_code == 3


def test_a_decompression_bomb_is_stopped_at_the_memory_cap(tmp_path) -> None:
    bomb = text_bomb(tmp_path)
    assert bomb.stat().st_size < 50_000
    started = time.monotonic()
    with pytest.raises(PdfMemoryError) as caught:
        load_pdf_isolated(bomb, memory_mb=256, timeout_s=60)
    assert str(caught.value) == f"{bomb}: reading needed more than 256 MB of memory"
    assert isinstance(caught.value, PdfError) and caught.value.exit_code == 3
    assert time.monotonic() - started < 60


def test_a_slow_file_is_stopped_at_the_time_limit(tmp_path) -> None:
    with pytest.raises(PdfTimeoutError) as tiny:
        load_pdf_isolated(SAMPLE_CONTRACT, timeout_s=0.05)
    assert str(tiny.value) == f"{SAMPLE_CONTRACT}: reading took longer than 0.05 s"
    # A file that really is slow: killed after 2 s, within a margin.
    slow = time_bomb(tmp_path)
    started = time.monotonic()
    with pytest.raises(PdfTimeoutError, match="reading took longer than 2 s"):
        load_pdf_isolated(slow, timeout_s=2)
    assert time.monotonic() - started < 10


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_reader_dies_with_its_caller(tmp_path) -> None:
    """A batch worker killed at its deadline must not leave its reader running on the hostile file."""
    slow = time_bomb(tmp_path)
    code = f"from docanalyst.isolation import load_pdf_isolated; load_pdf_isolated({str(slow)!r}, timeout_s=120)"
    caller = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        readers: list[int] = []
        while not readers and time.monotonic() < deadline:
            time.sleep(0.2)
            readers = children_of(caller.pid)
        assert readers, "the reader process never started"
        time.sleep(1.0)  # the reader is now busy inside MuPDF
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 3  # the kernel kills it at once; the file alone would take ~15 s
        while Path(f"/proc/{readers[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = Path(f"/proc/{readers[0]}/stat").exists() and ") Z" not in Path(f"/proc/{readers[0]}/stat").read_text()
        assert not alive, "the reader outlived its caller"
    finally:
        caller.kill()


def test_a_crashing_reader_is_one_plain_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(isolation, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(DamagedPdfError) as crashed:
        load_pdf_isolated(SAMPLE_CONTRACT)
    assert str(crashed.value) == f"{SAMPLE_CONTRACT}: the reader process crashed on this file (SIGSEGV)"
    # Whatever the child writes, the parent only accepts a JSON answer of a known shape (never pickle).
    monkeypatch.setattr(isolation, "_CHILD", "import sys; sys.stdout.write('not json'); sys.exit(0)")
    with pytest.raises(PdfError, match=r"the reader process failed \(exit 0\)"):
        load_pdf_isolated(SAMPLE_CONTRACT)
    answer = '{"kind": "document", "document": {"pages": [{"evil": 1}]}}'
    monkeypatch.setattr(isolation, "_CHILD", f"import sys; sys.stdout.write({answer!r})")
    with pytest.raises(PdfError, match="answered something that is not a document"):
        load_pdf_isolated(SAMPLE_CONTRACT)
