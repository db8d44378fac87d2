"""Stopping: a command and every process it started end together, on SIGINT or SIGTERM, at any moment.

The engine runs in other processes (vLLM's ``EngineCore`` and its ``Worker``), and so do the batch readers and the
web app. Python's default SIGTERM kills only the process it reaches, so those children used to run on, orphaned.
Here a signal becomes an ``Interrupted`` exception in the main thread: the commands' ``finally`` blocks close the
engine through vLLM's own shutdown (``VllmEngine.close``), an open database transaction rolls back, and then
``stopping`` ends whatever is left of the process tree (terminate, then kill) and exits 130 (SIGINT) or 143
(SIGTERM) with one plain line. The pieces behind that:

- the process is a child subreaper (Linux): a grandchild orphaned by its parent's exit (a vLLM Worker whose
  EngineCore ended) is re-parented to us, so "our descendants" stays the whole tree;
- a watchdog thread, woken through ``signal.set_wakeup_fd`` even while the main thread is stuck in C code, ends
  the tree and the process if the orderly stop has not finished within ``HARD_STOP_S``; a second signal does so
  at once;
- processes forked from us (vLLM's EngineCore is forked) get ``PR_SET_PDEATHSIG`` (SIGKILL): a parent killed
  with SIGKILL, where nothing can run, still takes its engine with it; forked from a thread other than the main
  one (the web app loads its engine in a thread, and the death signal follows the forking *thread*), the child
  instead polls its parent id once a second;
- ``run_child`` runs the web app's server process: a signal is passed on to it, so it closes its own engine, and
  it too dies with us if we are killed.

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
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# Python's multiprocessing resource tracker ignores SIGINT/SIGTERM and exits by itself once every process that
# holds its pipe is gone; ending it earlier would only leak what it is there to clean up.
_TRACKER = "multiprocessing.resource_tracker"
_SERVER = (
    "import sys; from docanalyst.lifecycle import die_with_parent; die_with_parent(int(sys.argv.pop(1))); "
    "from streamlit.web.cli import main; sys.argv[0] = 'streamlit'; main(prog_name='streamlit')"
)


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
    forked_from_main = True
    parent = 0


_state = _State()


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when its parent (the thread that started it) ends; exit at once if the
    parent is already gone. Call it from the main thread of the child."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)


def _before_fork() -> None:
    _state.forked_from_main = threading.current_thread() is threading.main_thread()
    _state.parent = os.getpid()


def _after_fork_in_child() -> None:
    """A forked child is not the command: our handlers and the wakeup pipe go, and it dies with its parent."""
    for signum in EXITS:
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, signal.SIG_DFL)
    if _state.wakeup is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for fd in _state.wakeup:
            with contextlib.suppress(OSError):
                os.close(fd)
    _state.installed, _state.received, _state.open, _state.wakeup = False, None, False, None
    if _state.forked_from_main:
        die_with_parent(_state.parent)
    else:
        threading.Thread(target=_watch_parent, args=(_state.parent,), name="docanalyst-parent", daemon=True).start()


_fork_hooks = False


def install_fork_hooks() -> None:
    """Every process forked from this one from now on dies with it (see the module docstring)."""
    global _fork_hooks
    if not _fork_hooks and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _fork_hooks = True


def install() -> None:
    """Signal handlers, the watchdog, subreaper and fork hooks for this process (main thread only; idempotent)."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    install_fork_hooks()
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
    code, message = EXITS.get(signal.Signals(signum), (128 + signum, "stopped"))
    end_tree(quiet_s=0.0)
    with contextlib.suppress(OSError):
        os.write(2, f"{message}\n".encode())
    os._exit(code)


def received() -> int | None:
    """The first SIGINT/SIGTERM this process got inside ``stopping``, if any."""
    return _state.received


def _descendants() -> list[Any]:
    import psutil

    try:
        found = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    mine = []
    for proc in found:
        try:
            if not any(_TRACKER in part for part in proc.cmdline()):
                mine.append(proc)
        except psutil.Error:
            continue  # gone already, or a zombie
    return mine


def end_tree(quiet_s: float = QUIET_S) -> int:
    """End every process below this one: ``quiet_s`` to exit on their own, then SIGTERM, then SIGKILL.
    Returns how many had to be signalled."""
    import psutil

    procs = _descendants()
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
    on stderr ("interrupted" / "terminated") and exit code 130 / 143 (a ``SystemExit``). Errors that are not
    caused by a signal go on to the caller unchanged."""
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
    signum = _state.received
    if signum is None:
        end_tree()
        return
    end_tree()
    code, message = EXITS[signal.Signals(signum)]
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def run_child(command: Sequence[str]) -> int:
    """Run a child process to its end (the web app's server); a signal we receive is passed on to it, and it gets
    ``CHILD_STOP_S`` to stop on its own before it is killed. The child dies with us if we are killed."""
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
    """``python -m streamlit run APP ARGS``, but the server process first asks to die with this one."""
    return [sys.executable, "-c", _SERVER, str(os.getpid()), "run", app_file, *args]
