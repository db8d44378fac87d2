"""Batch processing: a mixed folder through the real embedded engine, resume, and a SIGKILL part-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docanalyst import cli
from docanalyst.batch import find_pdfs, prepare_parallel
from docanalyst.pipeline import ExtractOptions

from conftest import CORPUS, LONG_CONTRACT, SAMPLES, count_calls

# The two shortest samples (CI's 45 minutes: every document here is an engine answer on two CPU cores).
GOOD = [SAMPLES / "harborpeak-quillon-nda.pdf", SAMPLES / "northwind-bluefin-services-agreement.pdf"]
FINISHED = {"ok", "partial"}  # an answer always fits its reserve; a cut one keeps its complete fields
SHORT_ANSWER = 48  # output tokens: a cut answer is stored (partial or truncated) and resumed like any other
STORED = {"ok", "partial", "truncated"}


def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for pdf in GOOD:
        shutil.copy(pdf, folder / pdf.name)
    shutil.copy(CORPUS / "robustness/qpdf/bad1.pdf", folder / "broken.pdf")
    shutil.copy(CORPUS / "robustness/pdfjs/issue6010_1.pdf", folder / "locked.pdf")
    shutil.copy(CORPUS / "robustness/qpdf/broken-lzw.pdf", folder / "scan.PDF")  # no text, no image: OCR cannot help
    shutil.copy(LONG_CONTRACT, folder / "long.pdf")
    (folder / "notes.txt").write_text("not a pdf, not matched")
    return folder


def runs_by_document(db_url: str) -> dict[str, list[tuple[int, str]]]:
    con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        rows = con.execute(
            "select d.path, r.id, r.status from runs r join documents d on d.sha256 = r.document_sha256 order by r.id"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[int, str]]] = {}
    for path, run_id, status in rows:
        out.setdefault(Path(path).name, []).append((run_id, status))
    return out


def stored_runs(db_url: str) -> int:
    """Runs stored so far by another process; 0 while its database is still being created and migrated."""
    if not Path(db_url.removeprefix("sqlite:///")).exists():
        return 0
    try:
        return sum(map(len, runs_by_document(db_url).values()))
    except sqlite3.OperationalError:  # "no such table" until the migration's transaction commits
        return 0


def test_find_pdfs_and_reader_timeout(tmp_path, base_settings) -> None:
    folder = mixed_folder(tmp_path)
    files = find_pdfs(folder)
    assert [f.name for f in files] == sorted(
        ["broken.pdf", "locked.pdf", "long.pdf", "scan.PDF", *(p.name for p in GOOD)]
    )
    # A deadline no reader can meet: every file is reported, none hangs the batch.
    results = dict(prepare_parallel(base_settings, files[:3], ExtractOptions(profile="embedded"), 2, timeout_s=0.01))
    assert sorted(results) == [0, 1, 2]
    assert all(str(e).endswith("reading took longer than 0.01 s: skipped") for e in results.values())


@pytest.fixture
def batch_cli(cli_pool, db_env):
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, ["batch", *args], catch_exceptions=False)


@pytest.mark.engine
def test_mixed_folder_then_resume(batch_cli, embedded_engine, tmp_path, db_env, monkeypatch) -> None:
    calls = count_calls(monkeypatch, embedded_engine)
    folder = mixed_folder(tmp_path)
    result = batch_cli(str(folder), "--template", "generic", "--jsonl")
    lines = {Path(o["document"]["path"]).name: o for o in map(json.loads, result.stdout.splitlines())}
    assert len(lines) == len(GOOD) + 4  # the samples and the four bad files
    for pdf in GOOD:
        assert lines[pdf.name]["status"] in FINISHED and lines[pdf.name]["run_id"] is not None
    assert lines["broken.pdf"]["error"].endswith("cannot open: not a PDF, or damaged beyond repair")
    assert lines["locked.pdf"]["error"].endswith("encrypted: a password is needed (use --password)")
    assert "no text to analyse" in lines["scan.PDF"]["error"]
    assert lines["long.pdf"]["status"] == "skipped" and "too long for profile 'embedded'" in lines["long.pdf"]["error"]
    assert result.exit_code == 1  # some failed
    assert len(calls) in (1, 2)  # all good documents in one engine call (+ at most one re-ask)
    stored = runs_by_document(db_env)
    assert sorted(stored) == sorted(p.name for p in GOOD) and all(len(v) == 1 for v in stored.values())

    before = len(calls)
    again = batch_cli(str(folder), "--template", "generic", "--jsonl")
    statuses = {Path(o["document"]["path"]).name: o["status"] for o in map(json.loads, again.stdout.splitlines())}
    assert {statuses[p.name] for p in GOOD} == {"cached"}
    assert len(calls) == before and runs_by_document(db_env) == stored

    wide = CliRunner().invoke(cli.app, ["export", "--format", "wide"]).stdout.splitlines()
    assert wide[0].startswith(
        "run_id,document,sha256,template,profile,model,status,error,summary,summary.confidence,summary.page"
    )
    assert len(wide) == 1 + len(GOOD)


def test_nothing_could_run_exits_2(tmp_path, db_env) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(CORPUS / "robustness/qpdf/bad1.pdf", folder / "a.pdf")
    result = CliRunner().invoke(cli.app, ["batch", str(folder)])
    assert result.exit_code == 2


@pytest.mark.engine
def test_sigkill_part_way_then_resume_loses_and_duplicates_nothing(batch_cli, tmp_path, db_env, base_settings) -> None:
    folder = tmp_path / "kill"
    folder.mkdir()
    for pdf in GOOD:
        shutil.copy(pdf, folder / pdf.name)
    env = {**os.environ, "DOCANALYST_DB": db_env, "DOCANALYST_CPU_KV_GIB": "2"}
    # Short answers (CI's 45 minutes): what is under test is the kill and the resume, not the answers.
    short = ["--max-output-tokens", str(SHORT_ANSWER)]
    cmd = [sys.executable, "-m", "docanalyst.cli", "batch", str(folder), "--template", "generic", "--batch-size", "1",
           *short]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and proc.poll() is None:
            if stored_runs(db_env):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the batch finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its engine process, mid-batch
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = runs_by_document(db_env)
    assert 1 <= sum(map(len, before.values())) < len(GOOD)
    assert all(status in STORED for runs in before.values() for _, status in runs)

    result = batch_cli(str(folder), "--template", "generic", "--jsonl", *short)
    outcomes = {Path(o["document"]["path"]).name: o for o in map(json.loads, result.stdout.splitlines())}
    after = runs_by_document(db_env)
    assert sorted(after) == sorted(p.name for p in GOOD)  # nothing lost
    assert all(len(runs) == 1 for runs in after.values())  # nothing duplicated
    for name, runs in before.items():
        assert after[name] == runs and outcomes[name]["status"] == "cached"  # finished work kept, not redone
    cut = any(o["status"] not in ("ok", "cached") for o in outcomes.values())  # batch's exit 1: an answer was cut
    assert result.exit_code == (1 if cut else 0)
