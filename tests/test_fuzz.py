"""Fuzzing the PDF loader: real PDFs from ../shared/corpus, mutated byte by byte and token by token (Hypothesis),
fed to ``load_pdf``. The only exceptions allowed out are DocanalystError subclasses (one plain message each).

Reproducible: Hypothesis is derandomized (same inputs in the same order on every machine) and stores nothing.
Bounded: at most MAX_EXAMPLES inputs and FUZZ_SECONDS of loading; inputs past the time budget are not tried.
OCR is off here (it only runs on image pages, costs seconds a page, and is tested in test_ocr.py).
Run with ``-s`` to see the figures: files tried, loaded, clean errors, crashes, slow files.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from docanalyst.errors import DocanalystError
from docanalyst.pdf import load_pdf

from conftest import CORPUS

FUZZ_SECONDS = float(os.environ.get("DOCANALYST_FUZZ_SECONDS", "40"))
MAX_EXAMPLES = int(os.environ.get("DOCANALYST_FUZZ_EXAMPLES", "15000"))
SLOW_S = 10.0  # one mutated file taking longer than this counts as a hang
# Small, fast-loading files that reach many parsers: xref tables and streams, object streams, encryption (RC4,
# AES), fonts (CID, Type3, TrueType), rotation, outlines, images, damaged structures. Read in place, never copied.
SEEDS: dict[str, str | None] = {
    "robustness/pypdf/crazyones.pdf": None,
    "robustness/pdfjs/rotation.pdf": None,
    "robustness/pdfjs/vertical.pdf": None,
    "robustness/pdfjs/hello_world_rotated.pdf": None,
    "robustness/pdfjs/ArabicCIDTrueType.pdf": None,
    "robustness/pdfjs/issue7200.pdf": None,
    "robustness/pdfjs/issue6010_1.pdf": "abc",
    "robustness/pdfjs/issue21579.pdf": "pässwört",
    "robustness/pdfjs/xref_command_missing.pdf": None,
    "robustness/pymupdf/circular-toc.pdf": None,
    "robustness/pymupdf/has-bad-fonts.pdf": None,
    "robustness/pymupdf/test-linebreaks.pdf": None,
    "robustness/sample-files/habibi.pdf": None,
    "robustness/sample-files/habibi-rotated.pdf": None,
    "robustness/sample-files/mistitled_outlines_example.pdf": None,
    "robustness/pypdf/r2-owner-password.pdf": None,
    "robustness/qpdf/hybrid-xref.pdf": None,
    "robustness/qpdf/bad-xref-entry.pdf": None,
    "robustness/qpdf/damaged-stream.pdf": None,
    "robustness/qpdf/deep-pages.pdf": None,
}
TOKENS = [
    b"<<",
    b">>",
    b"[",
    b"]",
    b"(",
    b")",
    b"\x00",
    b" obj ",
    b"endobj\n",
    b"stream\n",
    b"\nendstream",
    b" 0 R ",
    b"/Length 0",
    b"/Length 99999999",
    b"/Filter /FlateDecode",
    b"/Filter /LZWDecode",
    b"/Kids [3 0 R 3 0 R]",
    b"/Count 2147483647",
    b"/Parent 1 0 R",
    b"/Type /Page",
    b"/Type /Pages",
    b"/MediaBox [0 0 1e38 1e38]",
    b"/Rotate 45",
    b"trailer\n<< /Root 1 0 R >>",
    b"startxref\n0\n",
    b"%%EOF",
    b"xref\n0 1\n0000000000 65535 f \n",
    b"/Encrypt 9 0 R",
    b"BT /F1 1e30 Tf (x) Tj ET",
]
NUMBERS = [b"0", b"-1", b"1", b"2147483647", b"2147483648", b"-2147483649", b"9223372036854775808", b"1e308", b"999999"]
OPS = ["flip", "set", "delete", "insert", "duplicate", "truncate", "number", "token"]


@st.composite
def mutated_pdf(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray((CORPUS / name).read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(OPS))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 512))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 4096))]
        elif op == "truncate":
            del data[pos:]
        elif op == "number":  # the number at or after pos becomes an extreme one
            start = next((i for i in range(pos, min(len(data), pos + 256)) if chr(data[i]).isdigit()), None)
            if start is not None:
                end = start
                while end < len(data) and chr(data[end]).isdigit():
                    end += 1
                data[start:end] = draw(st.sampled_from(NUMBERS))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
    return name, bytes(data)


@pytest.mark.timeout(int(FUZZ_SECONDS) + 240)
def test_mutated_pdfs_raise_only_docanalyst_errors() -> None:
    stats: Counter[str] = Counter()
    crashes: list[str] = []
    slow: list[tuple[str, float]] = []
    seeds_used: set[str] = set()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="docanalyst-fuzz-") as folder:
        target = Path(folder) / "mutated.pdf"

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(mutated_pdf())
        def one(case: tuple[str, bytes]) -> None:
            if time.monotonic() - started > FUZZ_SECONDS:
                return  # over the time budget: the remaining inputs are not tried
            name, data = case
            target.write_bytes(data)
            t0 = time.monotonic()
            try:
                load_pdf(target, SEEDS[name], ocr=False)
                stats["loaded"] += 1
            except DocanalystError as exc:
                stats[f"error:{type(exc).__name__}"] += 1
            except Exception as exc:  # anything else is an uncaught exception: a crash of the tool
                crashes.append(f"{name} ({len(data)} bytes): {type(exc).__name__}: {exc}")
                keep = Path(folder).parent / f"docanalyst-fuzz-crash-{len(crashes)}.pdf"
                keep.write_bytes(data)
            elapsed = time.monotonic() - t0
            stats["slowest_ms"] = max(stats["slowest_ms"], int(elapsed * 1000))
            if elapsed > SLOW_S:
                slow.append((name, elapsed))
            stats["tried"] += 1
            seeds_used.add(name)

        one()
    tried = stats.pop("tried", 0)
    slowest = stats.pop("slowest_ms", 0) / 1000
    print(
        f"\nfuzz: {tried} mutated files from {len(seeds_used)} corpus PDFs in {time.monotonic() - started:.0f} s: "
        f"{stats['loaded']} loaded, {tried - stats['loaded'] - len(crashes)} clean errors, "
        f"{len(crashes)} crashes, {len(slow)} hangs (> {SLOW_S:g} s; slowest {slowest:.2f} s); "
        + ", ".join(f"{k.removeprefix('error:')} {v}" for k, v in sorted(stats.items()) if k.startswith("error:"))
    )
    assert crashes == [], crashes[:5]
    assert slow == [], slow
    assert tried >= min(MAX_EXAMPLES, 100)  # the budget was spent on loading, not lost
