"""Every PDF in ../shared/corpus/robustness through the real CLI, with the outcome recorded there:
readable text, a clear no-text warning, or one clear error line and a non-zero exit; each within 60 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS

ROBUSTNESS = CORPUS / "robustness"
EXPECTED = {
    k: v
    for k, v in json.loads((ROBUSTNESS / "expected_outcomes.json").read_text("utf-8")).items()
    if not k.startswith("_")
}
DOCANALYST = [sys.executable, "-m", "docanalyst.cli"]
# Scans that OCR (Tesseract, installed by scripts/setup.sh) turns into text: name -> at least this many characters.
OCR_RECOVERS = {"pdfjs/issue7200.pdf": 2000}

ERROR_LINES = {
    "cannot open": "cannot open: not a PDF, or damaged beyond repair",
    "cannot open: code=7: cycle in page tree": "cannot open: code=7: cycle in page tree",
    "no pages": "no pages (empty or damaged beyond repair)",
    "encrypted: no working password": "encrypted: a password is needed (use --password)",
}


def tokens(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOCANALYST, "tokens", "--json", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def expected_error_line(record: dict) -> str:
    reason = record["reason"]
    key = "cannot open" if reason.startswith("cannot open: Failed to open") else reason
    return ERROR_LINES[key]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_robustness_pdf(name: str, base_settings) -> None:
    record = EXPECTED[name]
    path = ROBUSTNESS / name
    args = ["--password", record["password"]] if record.get("password") else []
    proc = tokens(path, *args)
    assert "Traceback" not in proc.stderr
    if record["expect"] == "error":
        assert proc.returncode == 3, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        page = " page \\d+:" if "cycle" in record["reason"] else ""
        assert lines[0].startswith(f"error: {path}:"), lines[0]
        assert lines[0].endswith(expected_error_line(record)), lines[0]
        if page:
            assert ": page " in lines[0]
        return
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["pages"] == record["pages"]
    if record["expect"] == "text":
        assert report["chars"] >= record["min_chars"]
        assert report["pages_without_text"] == []
    elif name in OCR_RECOVERS:  # a scan: OCR recovers its text and says so
        assert report["chars"] >= OCR_RECOVERS[name]
        assert report["pages_without_text"] == []
        assert "text on page 1 recovered by OCR (Tesseract, eng)" in report["warnings"]
    else:  # no_text: a clear warning naming the pages
        assert report["pages_without_text"] == list(range(1, record["pages"] + 1))
        assert any(
            w.startswith(f"no text layer on {record['pages']} of {record['pages']} page(s)") for w in report["warnings"]
        )
    if record.get("without_password") == "error":
        locked = tokens(path)
        assert locked.returncode == 3 and locked.stdout == ""
        assert locked.stderr.strip().splitlines() == [
            f"error: {path}: encrypted: a password is needed (use --password)"
        ]
        wrong = tokens(path, "--password", "definitely-wrong")
        assert wrong.stderr.strip().splitlines() == [f"error: {path}: encrypted: the password is wrong"]


def test_extract_refuses_a_scan_without_text(db_env) -> None:
    path = ROBUSTNESS / "qpdf/broken-lzw.pdf"  # no text and no image (issue7200.pdf is read by OCR now)
    proc = subprocess.run([*DOCANALYST, "extract", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {path}: no text to analyse: no page has a text layer, and OCR recovered none"
    )
