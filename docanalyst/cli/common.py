"""What every command shares: the two consoles, JSON lines, safe text for Rich, settings and the engine seam."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from docanalyst.config import Settings
from docanalyst.display import json_safe, printable, show_path


def out() -> Console:
    """Console for results (stdout); progress and errors go to ``err()``."""
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def err() -> Console:
    """Progress and messages; soft_wrap so an error stays one line however long its path."""
    return Console(file=sys.stderr, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def settings(db: str | None = None) -> Settings:
    return Settings.from_env().with_db(db)


def engine_factory() -> Any:
    """``docanalyst.cli.ENGINE_FACTORY``, read at call time: tests point it at a session-wide engine (with
    monkeypatch on the package) so the CLI is exercised without a second engine start."""
    import docanalyst.cli as package

    return package.ENGINE_FACTORY


def emit_json(obj: Any) -> None:
    # json_safe: a file name that is not UTF-8 goes out as \udcXX escapes, which json.loads turns back into it
    sys.stdout.write(json_safe(json.dumps(obj, ensure_ascii=False)) + "\n")
    sys.stdout.flush()


def path_text(path: str | Path) -> str:
    """A file name for Rich output: one printable line, markup in the name shown as written."""
    return escape(show_path(path))


def safe_text(text: object, keep: str = "") -> str:
    """User or model text for Rich output: control characters escaped (but ``keep``), markup shown as written."""
    return escape(printable(str(text), keep))


def _status(p: str, s: str) -> str:
    if s == "starting engine":
        s = "starting the engine (about 15-60 s on a CPU, 1-5 min on a GPU)…"
    return f"{path_text(Path(p).name)}: {escape(s)}"


@contextmanager
def progress_line() -> Iterator[Callable[[str, str], None]]:
    """Progress of `extract`/`ask`: a spinner line on a terminal; in a log (the set-up's demo, CI) one plain line
    per new stage, so a first-time user sees the engine start instead of waiting in silence."""
    console = err()
    if console.is_terminal:
        with console.status("starting…") as status:
            yield lambda p, s: status.update(_status(p, s))
        return
    seen: set[str] = set()

    def say(p: str, s: str) -> None:
        line = _status(p, s)
        if line not in seen:
            seen.add(line)
            console.print(line, highlight=False)

    yield say


def command_line() -> str:
    """The command as typed, stored with an evaluation so it can be rerun."""
    import shlex

    return " ".join(["docanalyst", *(shlex.quote(a) for a in sys.argv[1:])])
