"""What every command shares: the two consoles, JSON lines, safe text for Rich, settings and the engine seam
(``engine_pool``: the one place the CLI gets engines from)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from docanalyst.config import Settings
from docanalyst.display import json_safe, printable, show_path

if TYPE_CHECKING:
    from docanalyst.engines.pool import EnginePool
    from docanalyst.pipeline import Analyzer


def out() -> Console:
    """Console for results (stdout); progress and errors go to ``err()``."""
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def err() -> Console:
    """Progress and messages; soft_wrap so an error stays one line however long its path."""
    return Console(file=sys.stderr, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def settings(db: str | None = None) -> Settings:
    return Settings.from_env().with_db(db)


class _Pool:
    """The engine pool of this process (see ``engine_pool``)."""

    pool: EnginePool | None = None


def engine_pool() -> EnginePool:
    """The process's engine pool, made on first use: every command that needs an engine gets it from here, and
    ``close_engines`` (called by ``main`` when the command is done) closes it. This function is the CLI's one
    engine seam: tests replace it (``cli_pool`` in tests/conftest.py) so commands run in-process on the
    session's engines instead of starting another."""
    from docanalyst.engines.pool import EnginePool

    if _Pool.pool is None:
        _Pool.pool = EnginePool(Settings.from_env())
    return _Pool.pool


def close_engines() -> None:
    """Close the pool ``engine_pool`` made, if any (idempotent)."""
    pool, _Pool.pool = _Pool.pool, None
    if pool is not None:
        pool.close()


@contextmanager
def open_analyzer(config: Settings) -> Iterator[Analyzer]:
    """An Analyzer on the process's pool. It never closes the pool (the engine outlives one command in a test
    session, and ``main`` closes it once at the end); closing it releases only its own store and state."""
    from docanalyst.pipeline import Analyzer

    analyzer = Analyzer(config, pool=engine_pool())
    try:
        yield analyzer
    finally:
        analyzer.close()


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
