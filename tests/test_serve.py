"""``docanalyst serve``: the real command, the real embedded engine behind vLLM's own server, real CLI clients.

One server for the module (``docanalyst serve`` as a process, 127.0.0.1 on a free port, 1 GiB of KV cache),
always stopped. In order: the flags and the address checks (no engine); ``extract --engine URL`` stores what the
in-process engine stores for the same PDF, on this machine; the raw request fields our client sends; two clients
at once; SIGKILL of ``serve`` in the middle of an answer (the client says so in one line and stores no result,
and the keeper ends the server's processes); SIGTERM of a second ``serve`` while its engine starts (exit 143, one
line, nothing left). Run under the engine lock:
``flock /tmp/docanalyst-engine.lock .venv/bin/python -m pytest tests/test_serve.py -x -q``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from docanalyst import serving
from docanalyst.profiles import PROFILES, get_profile
from docanalyst.store import Store

from conftest import SAMPLES

pytestmark = pytest.mark.engine

NDA = SAMPLES / "harborpeak-quillon-nda.pdf"
START_S = 300.0  # a server's start on a busy 2-core machine: 40-60 s measured
# Two fields, an answer of at most 268 tokens on the embedded profile: the engine work stays a few seconds.
TEMPLATE = """\
name: serve_check
label: disclosing party and governing law (tests/test_serve.py)
version: 1
task: extract these terms of the agreement above.
fields:
  - name: disclosing_party
    description: the party that discloses the confidential information
    kind: names
    max_length: 60
  - name: governing_law
    description: the state or country whose law governs the agreement
    kind: jurisdiction
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(db: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCANALYST_ENGINE", "DOCANALYST_API_KEY")}
    env.update(DOCANALYST_CPU_KV_GIB="1", DOCANALYST_ENGINE_ARGS="")
    if db is not None:
        env["DOCANALYST_DB"] = f"sqlite:///{db}"
    return env


def cli(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "docanalyst.cli", *args]
    return subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    ready_line: str
    stderr: list[str]


def start_serve(port: int, *, wait: bool = True) -> Served:
    """`docanalyst serve --port PORT` in its own session; with ``wait``, until its ready line."""
    proc = cli("serve", "--port", str(port), env=cli_env(), start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    threading.Thread(target=lambda: [stderr.append(line) for line in proc.stderr], daemon=True).start()
    served = Served(proc, f"http://127.0.0.1:{port}", "", stderr)
    if wait:
        try:
            served.ready_line = lines.get(timeout=START_S)
        except queue.Empty:
            stop(proc)
            pytest.fail(f"docanalyst serve did not become ready: {''.join(stderr)[-2000:]}")
    return served


def tree(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def stop(proc: subprocess.Popen[str]) -> None:
    """The fixture's finaliser: SIGTERM, then SIGKILL of whatever of the tree is left."""
    procs = tree(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait(timeout=30)


def left_alive(procs: list[psutil.Process], timeout_s: float = 20.0) -> list[str]:
    """The processes of ``procs`` still running after ``timeout_s`` (zombies count as gone)."""
    _gone, alive = psutil.wait_procs(procs, timeout=timeout_s)
    out = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="module")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "serve_check.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(base_settings) -> Iterator[Served]:
    """One `docanalyst serve` of the embedded profile for the module (base_settings: the models are installed)."""
    server = start_serve(free_port())
    try:
        yield server
    finally:
        stop(server.proc)


# ---- no engine ----------------------------------------------------------------------------------------------


def test_engine_settings_become_flags_by_one_rule() -> None:
    flags = serving.vllm_flags(
        {"max_model_len": 8192, "enforce_eager": True, "trust_remote_code": False, "disable_log_stats": False,
         "hf_overrides": {"rope_parameters": {"factor": 4.0}}, "logits_processors": ["a.b:C"], "quantization": None}
    )  # fmt: skip
    assert flags == [
        *("--max-model-len", "8192", "--enforce-eager", "--no-trust-remote-code"),
        *("--hf-overrides", '{"rope_parameters":{"factor":4.0}}', "--logits-processors", "a.b:C"),
    ]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_parses_with_the_installed_vllms_own_parser(base_settings, name: str) -> None:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser  # vLLM 0.32
    except ImportError:
        from vllm.entrypoints.openai.cli_args import make_arg_parser  # 0.2x
    profile = get_profile(name)
    plan = serving.plan(base_settings, profile, port=8123, api_key="k", overrides={"max_num_seqs": 2})
    assert plan.argv[1:3] == ["-m", serving.SERVER_MODULE]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(plan.argv[3:])
    assert args.served_model_name == [profile.local_folder or profile.model]
    assert args.max_model_len == profile.max_model_len and args.max_num_seqs == 2 and args.seed == 0
    assert args.logits_processors == ["docanalyst.engines.guard:RepetitionGuard"]
    assert args.structured_outputs_config.disable_any_whitespace and args.logprobs_mode == "raw_logprobs"
    assert dict(args.hf_overrides or {}) == dict(profile.hf_overrides or {})
    assert args.enable_prompt_tokens_details and args.port == 8123 and args.host == "127.0.0.1"
    assert plan.env["VLLM_API_KEY"] == "k" and "k" not in plan.argv  # the key stays out of `ps`
    assert all(plan.env.get(k) == v for k, v in profile.engine_env.items() if k not in os.environ)


def test_a_reachable_address_needs_allow_remote_and_a_key() -> None:
    assert serving.is_loopback("127.0.0.1") and serving.is_loopback("localhost") and serving.is_loopback("::1")
    assert not serving.is_loopback("0.0.0.0") and not serving.is_loopback("10.1.2.3")
    for args, needs in ((["--host", "0.0.0.0"], "--allow-remote"), (["--host", "0.0.0.0", "--allow-remote"], "key")):
        proc = cli("serve", *args, "--port", str(free_port()), env=cli_env())
        stdout, stderr = proc.communicate(timeout=60)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --host 0.0.0.0"), stderr
        assert needs in lines[0] and stdout == ""


def test_a_failed_start_is_one_line_with_vllms_reason() -> None:
    reason = serving.failure_reason(
        ["(APIServer pid=7) ERROR 12-02 19:17:45 [core.py:1] ValueError: max_model_len (999999) is too large",
         "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"]
    )  # fmt: skip
    assert reason == "ValueError: max_model_len (999999) is too large"
    proc = cli("serve", "--port", str(free_port()), "--engine-arg", "no_such_setting=1", env=cli_env())
    stdout, stderr = proc.communicate(timeout=120)  # vLLM's own parser refuses it, before any engine starts
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 5 and stdout == "" and len(errors) == 1, stderr
    assert "unrecognized arguments: --no-such-setting" in errors[0] and "Traceback" not in stderr
    # the served name carries the argument (it may change what the model computes), as a run records it
    assert "(model smollm2-135m-instruct [no_such_setting=1])" in stderr


def test_discover_ignores_closed_ports_and_keyed_servers() -> None:
    started = time.perf_counter()
    assert serving.discover(url=f"http://127.0.0.1:{free_port()}") is None
    assert time.perf_counter() - started < 2.0

    class Keyed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Keyed)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert serving.discover(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1") is None
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- one server for the module --------------------------------------------------------------------------------


def finished(proc: subprocess.Popen[str], timeout_s: float = 600.0) -> tuple[int, dict | None, str]:
    """(exit code, the first JSON line of stdout or None, stderr) of a CLI client."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()  # no process outlives the test
        stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return proc.returncode, json.loads(lines[0]) if lines else None, stderr


def without_confidence(result: dict) -> dict:
    return {name: {k: v for k, v in cited.items() if k != "confidence"} for name, cited in result.items()}


def extract_args(pdf: Path, template: Path, *more: str) -> list[str]:
    return ["extract", str(pdf), "--template", str(template), "--json", *more]


def test_extract_through_serve_stores_what_in_process_stores(
    served, cli_pool, embedded_engine, db_env, template_file, tmp_path, monkeypatch
) -> None:
    from docanalyst import cli as cli_app

    assert served.ready_line.startswith(
        f"serving profile embedded (model smollm2-135m-instruct) at {served.url} — use it with --engine {served.url}"
    )
    monkeypatch.delenv("DOCANALYST_ENGINE", raising=False)
    # The fresh server's prefix cache is empty: so must the session engine's be (a cache hit changes the numbers).
    embedded_engine.llm.reset_prefix_cache()
    base = CliRunner().invoke(
        cli_app.app, extract_args(NDA, template_file, "--engine", "local"), catch_exceptions=False
    )
    baseline = json.loads(base.stdout.strip().splitlines()[0])

    db = tmp_path / "server.db"
    code, out, stderr = finished(cli(*extract_args(NDA, template_file, "--engine", served.url), env=cli_env(db)))
    assert out is not None, stderr
    assert code == base.exit_code and out["status"] == baseline["status"] and out["status"] in ("ok", "partial")
    assert out["model"] == baseline["model"] == "smollm2-135m-instruct" and out["profile"] == "embedded"
    assert out["document"] == baseline["document"]
    assert without_confidence(out["result"]) == without_confidence(baseline["result"])  # values, quotes, pages
    for name, cited in out["result"].items():
        assert cited["confidence"] == pytest.approx(baseline["result"][name]["confidence"], abs=1e-3)
    (row, _document), *others = Store(f"sqlite:///{db}").list_runs()
    assert others == [] and row.status == out["status"] and row.model == "smollm2-135m-instruct"
    assert without_confidence(row.result or {}) == without_confidence(out["result"])
    assert json.loads(row.sampling_json)["engine"]["backend"] == "server"


def test_the_server_takes_the_fields_our_client_sends(served, base_settings) -> None:
    from docanalyst.engines.base import GUARD_KEY
    from docanalyst.models import EMBEDDED_DIR
    from docanalyst.tokenization import model_tokenizer

    assert serving.discover(url=served.url + "/v1") == serving.ServedEngine(
        served.url, ("smollm2-135m-instruct",), 8192
    )
    tokenizer = model_tokenizer(base_settings.models_dir / EMBEDDED_DIR)
    ids = tokenizer.encode(tokenizer.render_chat([{"role": "user", "content": "Acme Corp hires Beta LLC. JSON:"}]))
    schema = {"type": "object", "properties": {"parties": {"type": "array", "items": {"type": "string",
              "maxLength": 20}, "maxItems": 2}}, "required": ["parties"], "additionalProperties": False}  # fmt: skip
    body = {
        "model": "smollm2-135m-instruct", "prompt": ids, "max_tokens": 40, "temperature": 0.0, "top_p": 1.0,
        "top_k": -1, "seed": 0, "repetition_penalty": 1.1, "logprobs": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        "vllm_xargs": {GUARD_KEY: json.dumps(tokenizer.guard_ids)},
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    request = urllib.request.Request(
        served.url + "/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        events = [json.loads(line[6:]) for line in response.read().decode().splitlines() if line.startswith("data: {")]
    choices = [c for event in events for c in event["choices"]]
    text = "".join(c["text"] for c in choices)
    assert choices[-1]["finish_reason"] == "stop" and set(json.loads(text)) == {"parties"}
    logprobs = [p for c in choices for p in c["logprobs"]["token_logprobs"]]
    assert len(logprobs) == events[-1]["usage"]["completion_tokens"] and all(p <= 0.0 for p in logprobs)
    assert events[-1]["usage"]["prompt_tokens"] == len(ids)
    assert isinstance(events[-1]["usage"]["prompt_tokens_details"]["cached_tokens"], int)


def test_two_clients_at_once(served, template_file, tmp_path) -> None:
    pdfs = [NDA, SAMPLES / "northwind-bluefin-services-agreement.pdf"]
    clients = [
        cli(*extract_args(pdf, template_file, "--engine", served.url), env=cli_env(tmp_path / f"{n}.db"))
        for n, pdf in enumerate(pdfs)
    ]
    for client, pdf in zip(clients, pdfs, strict=True):
        code, out, stderr = finished(client)
        assert out is not None and code in (0, 8) and out["status"] in ("ok", "partial"), stderr
        assert out["document"]["path"] == str(pdf) and not [x for x in stderr.splitlines() if x.startswith("error")]


def requests_running(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0
    lines = [line for line in text.splitlines() if line.startswith("vllm:num_requests_running")]
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines))


def test_killing_serve_mid_answer_fails_the_client_in_one_line(served, template_file, tmp_path) -> None:
    assert served.proc.poll() is None
    processes = tree(served.proc.pid)
    db = tmp_path / "killed.db"
    # The NDA again: its prompt is in the server's prefix cache, so the request is there in seconds (then the
    # answer takes a few more).
    client = cli(*extract_args(NDA, template_file, "--engine", served.url), env=cli_env(db))
    deadline = time.monotonic() + 300
    while requests_running(served.url) == 0:
        assert client.poll() is None and time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.2)
    served.proc.send_signal(signal.SIGKILL)  # nothing in it runs: its keeper ends the server's processes
    code, _out, stderr = finished(client)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 5 and len(errors) == 1 and served.url in errors[0] and "Traceback" not in stderr, stderr
    assert [row.status for row, _ in Store(f"sqlite:///{db}").list_runs() if row.status in ("ok", "partial")] == []
    assert left_alive(processes) == []


def test_sigterm_while_the_engine_starts_leaves_nothing(served) -> None:
    stop(served.proc)  # never two engines at once
    server = start_serve(free_port(), wait=False)
    deadline = time.monotonic() + 180
    while not any("EngineCore" in p.name() for p in tree(server.proc.pid)[1:] if p.is_running()):
        assert server.proc.poll() is None and time.monotonic() < deadline, "".join(server.stderr)
        time.sleep(0.2)
    processes = tree(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        code = server.proc.wait(timeout=60)
    finally:
        stop(server.proc)
    assert time.monotonic() - signalled < 15.0  # a starting engine has nothing to save (serving.START_STOP_S)
    time.sleep(0.5)  # the last lines of stderr
    lines = "".join(server.stderr).strip().splitlines()
    assert code == 143 and lines[-1] == "terminated" and len(lines) == 2, lines  # "starting …", "terminated"
    assert left_alive(processes) == []
