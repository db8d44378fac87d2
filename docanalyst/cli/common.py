"""What every command shares: the two consoles, JSON lines, safe text for Rich, settings and the engine seam
(``engine_pool``: the one place the CLI gets engines from, built from the command's ``engine_settings``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from docanalyst.cli.edge import results_stream, stdout_to_stderr
from docanalyst.config import Settings, parse_engine_args
from docanalyst.display import json_safe, printable, show_path
from docanalyst.errors import ConfigError, DocanalystError

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


# Chosen with --model (a folder, or a server's model name), never as an engine argument.
_NOT_ENGINE_ARGS = ("model", "tokenizer", "served_model_name")


def engine_settings(
    db: str | None,
    options: Any,
    engine: str | None = None,
    api_key: str | None = None,
    engine_args: Sequence[str] | None = None,
    tensor_parallel_size: int | None = None,
) -> Settings:
    """The settings of a command that runs an engine: its flags over the environment's (``--engine-arg`` key by key
    over DOCANALYST_ENGINE_ARGS), checked. With neither --engine nor DOCANALYST_ENGINE nor engine arguments, a
    `docanalyst serve` on the default local address that serves the requested model (``options``' profile and
    --model) answers, and one line on stderr says so; otherwise the engine runs in this process."""
    config = settings(db)
    args = {**config.engine_args, **parse_engine_args(list(engine_args or []), source="--engine-arg")}
    if tensor_parallel_size is not None:
        args["tensor_parallel_size"] = tensor_parallel_size
    chosen = (engine or "").strip() or config.engine
    config = replace(config, engine=chosen, api_key=api_key or config.api_key, engine_args=args)
    check_engine(config)
    if config.engine is None and not args:
        config = _discovered(config, options)
    return config


def check_engine(config: Settings) -> None:
    """One line (exit 2) for an engine choice that cannot work, before anything is read."""
    engine = config.engine
    if engine is not None and engine != "local" and not engine.startswith(("http://", "https://")):
        raise ConfigError(
            f"--engine {printable(repr(engine))} (or DOCANALYST_ENGINE): give `local` or a server's URL, "
            "e.g. http://127.0.0.1:8008"
        )
    reserved = [key for key in _NOT_ENGINE_ARGS if key in config.engine_args]
    if reserved:
        raise ConfigError(f"engine argument {reserved[0]!r}: choose the model with --model instead")
    if config.engine_url and config.engine_args:
        shown = ", ".join(sorted(config.engine_args))
        raise ConfigError(
            f"engine arguments ({shown}) set up an engine this command starts; the engine at {config.engine_url} "
            "runs as it was started: give them to `docanalyst serve --engine-arg`, or drop --engine"
        )


def _discovered(config: Settings, options: Any) -> Settings:
    """``config`` with the `docanalyst serve` found on the default address, when it serves the model asked for."""
    from docanalyst import planning, serving

    try:
        wanted = planning.requested_model_name(config, options)
    except DocanalystError:
        return config  # an unknown profile: said where the command plans
    found = serving.discover()
    if found is None or not found.serves(wanted):
        return config
    err().print(f"using the engine at {found.url}", highlight=False)
    return replace(config, engine=found.url)


class _Pool:
    """The engine pool of this process (see ``engine_pool``) and the settings it is built from."""

    pool: EnginePool | None = None
    settings: Settings | None = None


def engine_pool() -> EnginePool:
    """The process's engine pool, made on first use from the command's settings (``open_analyzer``): every
    command that needs an engine gets it from here, and ``close_engines`` (called by ``main`` when the command
    is done) closes it. This function is the CLI's one engine seam: tests replace it (``cli_pool`` in
    tests/conftest.py) so commands run in-process on the session's engines instead of starting another."""
    from docanalyst.engines.pool import EnginePool

    if _Pool.pool is None:
        _Pool.pool = EnginePool(_Pool.settings or Settings.from_env())
    return _Pool.pool


def close_engines() -> bool:
    """Close the pool ``engine_pool`` made, if any (idempotent); True when an engine start on a background thread
    was left behind (the reading ended first, say with an error). Such a start is not waited for: the processes
    it keeps making are ended until it gives up (``_end_start``), and the caller then ends the process at once
    with ``os._exit`` (``edge.main``), as ``lifecycle`` does after a signal."""
    pool, _Pool.pool, _Pool.settings = _Pool.pool, None, None
    if pool is None:
        return False
    with stdout_to_stderr():
        left = pool.close(wait=False)
    if left:
        _end_start(pool)
    return left


END_START_S = 10.0  # at most this long (lifecycle's watchdog allows 20 s for the whole stop)
QUIET_S = 1.0  # nothing left to end for this long: the start makes no more processes (an in-process engine)
# Processes that stay: lifecycle's keeper and multiprocessing's resource tracker, known by the code they run (a
# vLLM worker's command line names the tracker too, in a -W option, so the name alone would spare it).
_SPARED = ("from docanalyst.lifecycle import keeper_main", "from multiprocessing.resource_tracker import")


def _end_start(pool: EnginePool) -> None:
    """End the processes an abandoned engine start makes (vLLM's engine core, then the worker it was spawning),
    again until the start has given up and none is left, so that none appears after ``lifecycle`` has ended the
    process tree. An engine built inside this process makes none: this returns after ``QUIET_S`` and the process
    ends without waiting for it."""
    now = time.monotonic()
    deadline, quiet_until = now + END_START_S, now + QUIET_S
    while time.monotonic() < min(deadline, quiet_until):
        if _kill_descendants():
            quiet_until = time.monotonic() + QUIET_S
        elif not pool.start_under_way(0.2):
            return


def _kill_descendants() -> int:
    """SIGKILL every process below this one but the ``_SPARED`` (a half-started engine has nothing to save); how
    many there were."""
    import psutil

    try:
        found = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    doomed = []
    for proc in found:
        try:
            if not any(arg.startswith(_SPARED) for arg in proc.cmdline()):
                proc.kill()
                doomed.append(proc)
        except psutil.Error:
            continue  # gone already
    psutil.wait_procs(doomed, timeout=5)
    return len(doomed)


@contextmanager
def open_analyzer(config: Settings) -> Iterator[Analyzer]:
    """An Analyzer on the process's pool, which is built from ``config`` when this is the command's first. It
    never closes the pool (the engine outlives one command in a test session, and ``main`` closes it once at
    the end); closing it releases only its own store and state."""
    from docanalyst.pipeline import Analyzer

    _Pool.settings = config
    analyzer = Analyzer(config, pool=engine_pool())
    try:
        yield analyzer
    finally:
        analyzer.close()


def emit_json(obj: Any) -> None:
    # json_safe: a file name that is not UTF-8 goes out as \udcXX escapes, which json.loads turns back into it
    stream = results_stream()
    stream.write(json_safe(json.dumps(obj, ensure_ascii=False)) + "\n")
    stream.flush()


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
