"""The error edge: the only place where errors become one plain line on stderr and an exit code.

vLLM and its engine process print to fd 1; while the engine runs, fd 1 points at stderr (``stdout_to_stderr``)
and our own output goes to the real stdout, so ``--json`` output is exactly one JSON object per document.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import typer

from docanalyst import quiet
from docanalyst.display import one_line
from docanalyst.errors import DocanalystError


class State:
    """What the root ``--debug`` set for this invocation (read by ``main`` for tracebacks)."""

    debug = False


def set_debug(value: bool) -> bool:
    """The root ``--debug``: engine logs and tracebacks back on. Eager, so it is read before the other options
    are checked and before anything starts the engine."""
    if value:
        State.debug = True
        quiet.loud()
    return value


def hoist_debug(args: Sequence[str]) -> list[str]:
    """``docanalyst extract x.pdf --debug`` as users type it: ``--debug`` anywhere before a ``--`` is taken out
    and given to the root, where the one ``--debug`` option lives (a command declares none of its own)."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != "--debug"]
    if len(head) == end:
        return args
    return ["--debug", *head, *args[end:]]


def ray_address_optional(args: Sequence[str]) -> list[str]:
    """``--ray`` takes an optional address (``batch DIR --ray``, ``--ray auto``, ``--ray head:6379``), which click
    cannot declare: a ``--ray`` not followed by an address is given the value ``local``."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    for i in reversed(range(end)):
        if args[i] == "--ray":
            following = args[i + 1] if i + 1 < end else ""
            if not (following in ("auto", "local") or ":" in following):
                args[i] = "--ray=local"
    return args


_results: list[IO[str]] = []  # where results go while stdout_to_stderr holds stdout (innermost last)


def results_stream() -> IO[str]:
    """Where a result line goes (cli.common.emit_json): the original stdout, even inside stdout_to_stderr."""
    return _results[-1] if _results else sys.stdout


@contextmanager
def stdout_to_stderr(stream_results: bool = False) -> Iterator[None]:
    """While the engine runs, fd 1 and sys.stdout point at stderr: vLLM's engine process inherits fd 1 when it
    starts, and libraries print (Ray's driver prints its cluster's errors), so nothing can write into our
    output. Results printed meanwhile (``stream_results``, for --jsonl) go through ``results_stream()`` to
    the original stdout."""
    sys.stdout.flush()
    saved_obj = sys.stdout
    try:
        saved_fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved_fd = -1
    stream: IO[str] | None = None
    if stream_results and saved_fd >= 0 and _uses_fd1(saved_obj):
        stream = open(os.dup(saved_fd), "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    if stream_results:
        _results.append(stream or saved_obj)  # a test runner's in-memory stream is used as it is
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        if stream_results:
            _results.pop().flush()
        sys.stdout.flush()
        if sys.__stdout__ is not None and not sys.__stdout__.closed:
            # what a library wrote meanwhile through the original stdout object (Ray's driver prints its
            # cluster's errors there) is still in its buffer: it belongs to stderr, where fd 1 points until now
            sys.__stdout__.flush()
        sys.stdout = saved_obj
        if stream is not None:
            stream.close()
        if saved_fd >= 0:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _uses_fd1(stream: IO[str]) -> bool:
    try:
        return stream.fileno() == 1
    except (OSError, ValueError, AttributeError):
        return False  # a test runner's in-memory stream


def usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception typer raises for a usage error: from the click it vendors (``typer._click``, typer 0.2x)
    or, for an older typer, from click itself. Either way it knows how to show itself and its exit code (2)."""
    import importlib

    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _traceback() -> None:
    if State.debug:
        import traceback

        traceback.print_exc()


def main() -> None:
    """Console-script entry: import-safe (vLLM spawns processes), one-line errors, proper exit codes.

    Every failure ends in one line on stderr: typer's usage message (exit 2) for a bad command line, ``error: ...``
    with the error's own exit code for what DocanalystError covers, and ``internal error`` (70) only for a bug.
    """
    quiet.quiet()  # before anything can import vLLM; --debug (read while the command line is parsed) undoes it
    State.debug = False
    from docanalyst import lifecycle
    from docanalyst.cli import app
    from docanalyst.cli.common import close_engines

    left_behind = False
    try:
        with lifecycle.stopping():  # SIGINT/SIGTERM at any moment: the whole process tree ends, exit 130/143
            try:
                code = app(args=ray_address_optional(hoist_debug(sys.argv[1:])), standalone_mode=False)
            finally:
                # The engines this command started, once, whatever happened. A start begun while reading that
                # nothing used (the reading failed, say) is not waited for: its processes are ended now, before
                # the error line, and the process ends at once below (its thread would keep it alive).
                left_behind = close_engines()
    except BaseException as exc:  # every failure becomes a line and a code here
        code = _exit_code(exc)
    code = code if isinstance(code, int) else 0
    if left_behind:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _exit_code(exc: BaseException) -> Any:
    """One line on stderr for ``exc`` and the exit code it stands for."""
    if isinstance(exc, usage_error_types()):
        exc.show()  # type: ignore[attr-defined]
        return exc.exit_code  # type: ignore[attr-defined]
    if isinstance(exc, typer.Abort | KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    if isinstance(exc, DocanalystError):
        _traceback()
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):  # `docanalyst export | head`: the reader left; nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if isinstance(exc, Exception):
        _traceback()
        print(
            f"internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 70
    raise exc  # SystemExit from lifecycle (130/143) and the like pass through unchanged
