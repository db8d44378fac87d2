"""Stopping: a command and every process it started end together, on SIGINT or SIGTERM, at any moment.

The engine may run in other processes (vLLM's ``EngineCore`` and its ``Worker``), and so do the PDF readers and
the web app's server. Python's default SIGTERM ends only the process it reaches, so those children used to run
on, orphaned. Here a signal becomes an ``Interrupted`` exception in the main thread: the commands' ``finally``
blocks close the engine through vLLM's own shutdown (``VllmEngine.close``), an open database transaction rolls
back, and then ``stopping`` ends whatever is left of the process tree (a grace period, SIGTERM, SIGKILL) and exits
130 (SIGINT) or 143 (SIGTERM) with one plain line. The pieces behind that:

- the process is a child subreaper (Linux): a grandchild orphaned by its parent's exit (a vLLM Worker whose
  EngineCore ended, the web app's engine when the server died) is re-parented to us, so "our descendants" stays
  the whole tree;
- a watchdog thread, woken through ``signal.set_wakeup_fd`` even while the main thread is stuck in C code, ends
  the tree and the process if the orderly stop has not finished within ``HARD_STOP_S``; a second signal does so
  at once;
- a keeper process (``keeper_main``) kills the tree if the command itself is killed with SIGKILL, where nothing
  in it can run. A death signal (``PR_SET_PDEATHSIG``, as the PDF readers use) cannot do this for the engine:
  vLLM starts its engine process with ``spawn`` on a CPU, from code we do not own, and the web app starts its
  engine from a thread (the death signal follows the thread that forked, not the process);
- ``run_child`` runs the web app's server: a signal is passed on to it, so it closes its own engine.

The terminal's process group is left alone: Ctrl-C still reaches the whole foreground group, as users expect.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXITS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}
QUIET_S = 3.0  # after the orderly stop, how long leftover children get to exit on their own
TERM_S = 3.0  # after SIGTERM, before SIGKILL
HARD_STOP_S = 20.0  # the watchdog's limit for the whole orderly stop
CHILD_STOP_S = 10.0  # the web app's server gets this long to close its engine after a signal
KEEPER_POLL_S = 0.5
_PR_SET_CHILD_SUBREAPER = 36
# Python's multiprocessing resource tracker ignores SIGINT/SIGTERM and exits by itself once every process that
# holds its pipe is gone; ending it earlier would only leak what it is there to clean up.
_TRACKER = "multiprocessing.resource_tracker"
_KEEPER = "from docanalyst.lifecycle import keeper_main; keeper_main()"


class Interrupted(BaseException):
    """A SIGINT or SIGTERM, raised in the main thread. A BaseException, so ``except Exception`` blocks (and click's
    KeyboardInterrupt handling) let it through to ``stopping``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    installed = False
    received: int | None = None  # the first signal
    open = False  # inside ``stopping``: a signal raises; outside it, it ends the process at once
    wakeup: tuple[int, int] | None = None
    keeper: int | None = None


_state = _State()


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _after_fork_in_child() -> None:
    """A forked child (vLLM forks its engine process where CUDA is not yet initialised) is not the command: our
    handlers and the wakeup pipe must not answer for it."""
    for signum in EXITS:
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, signal.SIG_DFL)
    if _state.wakeup is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for fd in _state.wakeup:
            with contextlib.suppress(OSError):
                os.close(fd)
    _state.installed, _state.received, _state.open, _state.wakeup, _state.keeper = False, None, False, None, None


def keeper_main() -> None:
    """The keeper process: it notes the command's descendants twice a second and, once the command is gone
    (killed with SIGKILL, where nothing in it can run), kills the ones still alive. vLLM starts its engine
    process with ``spawn`` on a CPU, so a death signal set at fork time would not reach it; the keeper covers
    forked, spawned and grand-children alike. Signals meant for the command (Ctrl-C, a group SIGTERM) leave it
    alone: the command's own stop ends the tree, and the keeper then exits with it."""
    for signum in EXITS:
        signal.signal(signum, signal.SIG_IGN)
    import psutil

    parent, me = int(sys.argv[1]), os.getpid()
    known: dict[int, Any] = {}
    while os.getppid() == parent:
        for proc in _descendants(parent, skip=me):
            known.setdefault(proc.pid, proc)
        known = {pid: proc for pid, proc in known.items() if proc.is_running()}
        time.sleep(KEEPER_POLL_S)
    for proc in list(known.values()):  # what they started since the last look (the engine's Worker, say)
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                known.setdefault(child.pid, child)
    for proc in known.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()  # psutil checks the process is the one noted (pid and start time), not a reused pid


def _start_keeper() -> None:
    try:
        keeper = subprocess.Popen(
            [sys.executable, "-c", _KEEPER, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return  # no keeper: everything but the SIGKILL case still holds
    _state.keeper = keeper.pid


_fork_hook = [False]


def install() -> None:
    """Signal handlers, watchdog, subreaper and keeper for this process (main thread only; idempotent)."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if not _fork_hook[0] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook[0] = True
    for signum in EXITS:
        signal.signal(signum, _on_signal)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        os.close(read_fd)
        os.close(write_fd)
    else:
        _state.wakeup = (read_fd, write_fd)
        threading.Thread(target=_watchdog, args=(read_fd,), name="docanalyst-watchdog", daemon=True).start()
    _start_keeper()
    _state.installed = True


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _state.received is None and _state.open:
        _state.received = signum
        raise Interrupted(signum)
    _hard_stop(_state.received or signum)


def _watchdog(read_fd: int) -> None:
    """Woken by the C-level signal handler even when the main thread cannot run Python code: after the first
    SIGINT/SIGTERM, give the orderly stop ``HARD_STOP_S``, then end everything."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        first = next((s for s in data if s in EXITS), None)
        if first is not None:
            break
    time.sleep(HARD_STOP_S)
    _hard_stop(_state.received or first)


def _hard_stop(signum: int) -> None:
    end_tree(quiet_s=0.0)
    _exit(signum)


def _exit(signum: int) -> None:
    """One line and the signal's exit code, now. The interpreter's own shutdown is skipped on purpose: with vLLM
    and torch imported it spends 10-70 s collecting module garbage on a busy 2-core machine (measured), and
    nothing is left to save: the engine is closed, the tree ended, and a run is in the database or not at all."""
    code, message = EXITS.get(signal.Signals(signum), (128 + signum, "stopped"))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a pipe may be closed, or a write cut by the signal
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"{message}\n".encode())
    os._exit(code)


def received() -> int | None:
    """The first SIGINT/SIGTERM this process got inside ``stopping``, if any."""
    return _state.received


def _descendants(root: int | None = None, skip: int | None = None) -> list[Any]:
    """The processes below ``root`` (default: this one), without ``skip`` (the keeper) and the resource tracker."""
    import psutil

    try:
        found = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []
    mine = []
    for proc in found:
        if proc.pid == skip:
            continue
        try:
            if not any(part.startswith(f"from {_TRACKER} import") for part in proc.cmdline()):
                mine.append(proc)  # a vLLM worker names the tracker too, in a -W option: only its code counts
        except psutil.Error:
            continue  # gone already, or a zombie
    return mine


def end_tree(quiet_s: float = QUIET_S) -> int:
    """End every process below this one: ``quiet_s`` to exit on their own, then SIGTERM, then SIGKILL.
    Returns how many had to be signalled."""
    import psutil

    procs = _descendants(skip=_state.keeper)  # the keeper leaves by itself once we are gone
    if not procs:
        return 0
    _gone, alive = psutil.wait_procs(procs, timeout=quiet_s) if quiet_s > 0 else ([], procs)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(alive, timeout=TERM_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=TERM_S)
    return len(alive) + len(_gone)


@contextmanager
def stopping() -> Iterator[None]:
    """Run a command so that a SIGINT or SIGTERM at any moment ends it and its whole process tree, with one line
    on stderr ("interrupted" / "terminated") and exit code 130 / 143. Errors and exits that a signal did not
    cause go on to the caller unchanged (after leftover children are ended)."""
    install()
    _state.open = True
    try:
        yield
    except BaseException:
        if _state.received is None:
            _state.open = False
            end_tree()
            raise
    finally:
        _state.open = False
    end_tree()
    if _state.received is not None:
        _exit(_state.received)


def run_child(command: Sequence[str]) -> int:
    """Run a child process to its end (the web app's server); a signal we receive is passed on to it, and it gets
    ``CHILD_STOP_S`` to stop on its own (and close its engine) before it is killed."""
    proc = subprocess.Popen(list(command))
    try:
        return proc.wait()
    except Interrupted as stop:
        with contextlib.suppress(OSError):
            proc.send_signal(stop.signum)
        try:
            proc.wait(timeout=CHILD_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def streamlit_command(app_file: str, args: Sequence[str]) -> list[str]:
    """``python -m streamlit run APP ARGS`` with this interpreter."""
    return [sys.executable, "-m", "streamlit", "run", app_file, *args]
