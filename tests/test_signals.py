"""One process tree, stopped as one: SIGINT or SIGTERM at any moment ends the command and every process it started
(docanalyst/lifecycle.py), with exit code 130 / 143 and one line on stderr, and leaves no half-written run.

The engine cases drive the real embedded engine in vLLM's multi-process layout (``VLLM_ENABLE_V1_MULTIPROCESSING=1``:
an ``EngineCore`` process and its ``Worker``), the layout in which an engine process can outlive its command. Every
process below the command is noted (psutil) while it runs, so one that was re-parented away is still checked.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import ROOT, SAMPLE_CONTRACT

DOCANALYST = [sys.executable, "-m", "docanalyst.cli"]
EXPECTED = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}
START_LIMIT_S = 900  # bounds only (a busy 2-core machine starts the engine in 40-200 s); nothing is timed
STOP_LIMIT_S = 120
GONE_LIMIT_S = 30
WORKER_CPU_S = 1.0  # the model's own process has computed this long since "generating": generation is under way
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def note_tree(self) -> list[psutil.Process]:
        """Remember every process below the command (by pid and start time, so a reused pid is not confused)."""
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass
        return list(self.seen.values())

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def named(self, part: str) -> list[psutil.Process]:
        found = []
        for proc in self.note_tree():
            try:
                if proc.is_running() and part in proc.name():
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def alive(self) -> list[str]:
        left = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{proc.pid} {proc.name()}")
            except psutil.Error:
                continue
        return left


def start(args: list[str], tmp_path: Path, **extra_env: str) -> Run:
    env = {
        **os.environ,
        "DOCANALYST_DB": f"sqlite:///{tmp_path / 'signals.db'}",
        "DOCANALYST_CPU_KV_GIB": "2",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "1",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [*DOCANALYST, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    return Run(proc, stderr_path)


def wait_for(run: Run, ready: Any, what: str, limit_s: float = START_LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        if run.proc.poll() is not None:
            pytest.fail(f"the command ended (exit {run.proc.returncode}) before {what}:\n{run.stderr()[-3000:]}")
        if time.monotonic() > deadline:
            run.proc.kill()
            pytest.fail(f"no {what} within {limit_s} s:\n{run.stderr()[-3000:]}")
        time.sleep(0.2)


def stop_and_check(run: Run, signum: signal.Signals) -> float:
    """Signal the command; check its exit code, its last stderr line and that its whole tree is gone.
    Returns the seconds until the last process of the tree was gone (reported, never asserted)."""
    run.note_tree()
    assert run.seen, "the command had started no process: nothing to check"
    signalled = time.monotonic()
    run.proc.send_signal(signum)
    try:
        returncode = run.proc.wait(timeout=STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        pytest.fail(f"the command did not stop within {STOP_LIMIT_S} s of {signum.name}")
    deadline = time.monotonic() + GONE_LIMIT_S
    while run.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    gone_s = time.monotonic() - signalled
    code, message = EXPECTED[signum]
    text = run.stderr()
    lines = [ANSI.sub("", line).split("\r")[-1].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    assert run.alive() == [], f"still running {GONE_LIMIT_S} s after {signum.name}"
    assert returncode == code, text[-3000:]
    assert lines and lines[-1] == message, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert sum(line in ("interrupted", "terminated") for line in lines) == 1
    print(f"{signum.name}: exit {returncode}, tree of {len(run.seen)} process(es) gone after {gone_s:.1f} s")
    return gone_s


def assert_nothing_half_written(db: Path) -> None:
    """Every run stored has its document and no field row without its run; the file is intact."""
    if not db.exists():
        return  # the command was stopped before it opened the database
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM fields WHERE run_id NOT IN (SELECT id FROM runs)").fetchone() == (0,)
        orphans = "SELECT count(*) FROM runs WHERE document_sha256 NOT IN (SELECT sha256 FROM documents)"
        assert con.execute(orphans).fetchone() == (0,)


@pytest.mark.engine
@pytest.mark.timeout(START_LIMIT_S + 300)
@pytest.mark.parametrize(
    ("moment", "signum"),
    [("engine start", signal.SIGINT), ("generation", signal.SIGTERM)],  # each signal once (CI's 45 minutes)
    ids=["engine-start-SIGINT", "generation-SIGTERM"],
)
def test_extract_stopped_ends_its_engine_processes(
    base_settings: Any, tmp_path: Path, moment: str, signum: signal.Signals
) -> None:
    # The progress line ("<file>: generating") is drawn only on a terminal; these variables make rich draw it
    # into the stderr file, where the test can read it.
    tty = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"} if moment == "generation" else {}
    run = start(["extract", str(SAMPLE_CONTRACT)], tmp_path, **tty)
    try:
        wait_for(run, lambda: run.named("EngineCore"), "engine process")
        if moment == "generation":
            wait_for(run, lambda: "generating" in run.stderr() and run.named("Worker"), "'generating' progress line")
            worker = run.named("Worker")[0]
            base = sum(worker.cpu_times()[:2])
            wait_for(run, lambda: sum(worker.cpu_times()[:2]) - base >= WORKER_CPU_S, "model computation")
        stop_and_check(run, signum)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    db = tmp_path / "signals.db"
    assert_nothing_half_written(db)
    if db.exists():  # stopped before any answer was complete: nothing at all was stored
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


_SAVE_RUN = """
import os, signal, sys
from docanalyst import lifecycle
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store

store = Store(sys.argv[1])
interrupt = sys.argv[2] == "signal"


def fields():
    # The document row is upserted and the run flushed before the fields: a signal here lands mid-transaction.
    yield FieldRow(path="parties", value="Acme", quote_status="exact")
    if interrupt:
        os.kill(os.getpid(), signal.SIGTERM)
    yield FieldRow(path="governing_law", value="New York", quote_status="exact")


document = DocumentRow(sha256="a" * 64, path="x.pdf", pages=1, chars=10)
run = RunRow(document_sha256="a" * 64, template="contract", template_version=1, template_sha256="t",
             schema_hash="s", profile="embedded", model="m", sampling_json="{}", status="ok", docanalyst_version="0")
with lifecycle.stopping():
    store.save_run(document, run, fields())
"""


@pytest.mark.parametrize("interrupt", [True, False])
def test_signal_during_commit_leaves_nothing_half_written(tmp_path: Path, interrupt: bool) -> None:
    db = tmp_path / "commit.db"
    proc = subprocess.run(
        [sys.executable, "-c", _SAVE_RUN, f"sqlite:///{db}", "signal" if interrupt else "none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_nothing_half_written(db)
    with sqlite3.connect(db) as con:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("documents", "runs", "fields")]
    if interrupt:
        assert proc.returncode == 143, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "terminated"
        assert "Traceback" not in proc.stderr
        assert counts == [0, 0, 0]  # the upsert and the flushed run were rolled back with the rest
    else:
        assert proc.returncode == 0, proc.stderr
        assert counts == [1, 1, 2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(300)
def test_ui_stopped_ends_its_server(tmp_path: Path) -> None:
    port = _free_port()
    args = ["ui", "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"]
    args += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    run = start(args, tmp_path)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
                return bool(response.read().strip() == b"ok")
        except OSError:
            return False

    try:
        wait_for(run, healthy, "answer from the web server", limit_s=240)
        assert any("streamlit" in " ".join(p.cmdline()) for p in run.note_tree() if p.is_running())
        stop_and_check(run, signal.SIGTERM)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
