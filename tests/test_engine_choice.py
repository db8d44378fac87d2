"""Which engine answers a command, and what a run records about it (issue 14).

Fast: the choice (``--engine`` over DOCANALYST_ENGINE, ``local``, auto-discovery of a `docanalyst serve` on the
default address, here a stub HTTP server answering ``/v1/models`` only), the engine arguments (parsing, merging,
the RunKey's model mark, the record in ``sampling``) and the background start that lets reading overlap the engine
start, all on scripted engines. One real case (``engine`` mark): the CLI as users run it, its in-process engine
started while the PDF is read and given an engine argument, stores the run the session's engine makes. A real
server is tests/test_serve.py's and tests/test_server_engine.py's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from docanalyst import planning, serving
from docanalyst.cli import app, common
from docanalyst.config import Settings
from docanalyst.engines import EnginePool, FakeEngine
from docanalyst.engines.pool import default_factory
from docanalyst.errors import ConfigError
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile

from conftest import ROOT, SAMPLE_CONTRACT

DOCANALYST = str(Path(sys.executable).parent / "docanalyst")

GOOD = json.dumps({"governing_law": {"value": "New York", "quote": "the laws of the State of New York", "page": 2}})
EMBEDDED_NAME = "smollm2-135m-instruct"


class _Models(BaseHTTPRequestHandler):
    served: ClassVar[tuple[str, ...]] = ()
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = json.dumps({"object": "list", "data": [{"id": m, "max_model_len": 8192} for m in self.served]})
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stub_serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Models]]:
    """A stand-in for `docanalyst serve` (its model list only) on a free loopback port, found by discovery."""
    handler = type("Models", (_Models,), {"served": (EMBEDDED_NAME,), "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    real = serving.discover
    monkeypatch.setattr(serving, "discover", lambda timeout_s=0.3: real(timeout_s, url=url))
    handler.url = url  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name in ("DOCANALYST_ENGINE", "DOCANALYST_API_KEY", "DOCANALYST_ENGINE_ARGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCANALYST_DB", settings.db_url)


EMBEDDED = ExtractOptions(profile="embedded")


def test_flag_wins_over_environment_and_local_never_looks_for_a_server(clean_env, stub_serve, monkeypatch) -> None:
    monkeypatch.setenv("DOCANALYST_ENGINE", "http://10.0.0.9:8000/v1")
    monkeypatch.setenv("DOCANALYST_API_KEY", "from-env")
    assert common.engine_settings(None, EMBEDDED).engine == "http://10.0.0.9:8000/v1"  # the environment
    chosen = common.engine_settings(None, EMBEDDED, engine="local", api_key="from-flag")
    assert (chosen.engine, chosen.engine_url, chosen.api_key) == ("local", None, "from-flag")
    assert stub_serve.hits == []  # an engine was named: nobody looked for a server


def test_a_serve_on_the_default_address_is_used_when_it_serves_the_model(clean_env, stub_serve, capsys) -> None:
    chosen = common.engine_settings(None, EMBEDDED)
    assert chosen.engine == stub_serve.url  # type: ignore[attr-defined]
    assert capsys.readouterr().err.strip() == f"using the engine at {stub_serve.url}"  # type: ignore[attr-defined]
    # another model asked for (the tiny Qwen3-Next profile): in-process, silently
    assert common.engine_settings(None, ExtractOptions(profile="qwen3-next-tiny")).engine is None
    # engine arguments are for an engine this command starts: no server is looked for
    stub_serve.hits.clear()
    assert common.engine_settings(None, EMBEDDED, engine_args=["max_num_seqs=2"]).engine is None
    assert stub_serve.hits == [] and capsys.readouterr().err == ""


def test_no_serve_means_in_process(clean_env, monkeypatch) -> None:
    monkeypatch.setattr(serving, "discover", lambda timeout_s=0.3: None)
    chosen = common.engine_settings(None, EMBEDDED)
    assert chosen.engine is None and chosen.engine_url is None
    assert EnginePool(chosen).factory.__qualname__ == "vllm_factory.<locals>.build"


def test_engine_arguments_merge_flag_over_environment(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("DOCANALYST_ENGINE_ARGS", '{"max_num_seqs": 4, "load-format": "auto"}')
    chosen = common.engine_settings(
        None, EMBEDDED, engine_args=["load_format=dummy", 'hf_overrides={"a": 1}'], tensor_parallel_size=2
    )
    assert chosen.engine_args == {
        "max_num_seqs": 4, "load_format": "dummy", "hf_overrides": {"a": 1}, "tensor_parallel_size": 2
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"engine": "8008"}, "--engine '8008' (or DOCANALYST_ENGINE): give `local` or a server's URL"),
        ({"engine_args": ["model=/x"]}, "engine argument 'model': choose the model with --model instead"),
        ({"engine_args": ["dummy"]}, "--engine-arg: expected key=value, got 'dummy'"),
        (
            {"engine": "http://127.0.0.1:9", "tensor_parallel_size": 2},
            "engine arguments (tensor_parallel_size) set up an engine this command starts; the engine at "
            "http://127.0.0.1:9 runs as it was started",
        ),
    ],
)
def test_impossible_engine_choices_are_config_errors(clean_env, kwargs, says) -> None:
    with pytest.raises(ConfigError) as caught:
        common.engine_settings(None, EMBEDDED, **kwargs)
    assert str(caught.value).startswith(says) and caught.value.exit_code == 2


def test_every_engine_command_takes_the_engine_options() -> None:
    runner = CliRunner()
    for command in (["extract"], ["ask"], ["batch"], ["eval", "run"]):
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
        for flag in ("--engine", "--api-key", "--engine-arg", "--tensor-parallel-size"):
            assert flag in shown, (command, flag)


def test_the_pool_builds_a_server_engine_by_the_served_name(settings, monkeypatch) -> None:
    asked: list[tuple[str, str]] = []

    def server_factory(config: Settings):  # the choice only: tests/test_server_engine.py runs the real one
        return lambda profile, ref: asked.append((config.engine_url or "", ref)) or FakeEngine(profile)

    monkeypatch.setitem(sys.modules, "docanalyst.engines.server", types.SimpleNamespace(server_factory=server_factory))
    served = replace(settings, engine="http://127.0.0.1:8123")
    folder = str(settings.models_dir / EMBEDDED_NAME)
    default_factory(served)(get_profile("embedded"), folder)
    default_factory(served)(get_profile("qwen3-next"), "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8")
    assert asked == [
        ("http://127.0.0.1:8123", EMBEDDED_NAME), ("http://127.0.0.1:8123", "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8")
    ]  # fmt: skip


def test_in_process_engines_get_the_engine_arguments(settings, monkeypatch) -> None:
    import docanalyst.engines.vllm as vllm_module

    built: list[dict[str, object]] = []

    class Recorded(FakeEngine):
        def __init__(self, profile, model_ref, *, cpu_kv_cache_gib, overrides):  # type: ignore[no-untyped-def]
            super().__init__(profile)
            built.append({"ref": model_ref, "kv": cpu_kv_cache_gib, **overrides})

    monkeypatch.setattr(vllm_module, "VllmEngine", Recorded)
    config = replace(settings, engine="local", engine_args={"load_format": "dummy"}, cpu_kv_cache_gib=2)
    EnginePool(config).get(get_profile("embedded"), "/m")
    assert built == [{"ref": "/m", "kv": 2, "load_format": "dummy"}]


def test_object_arguments_merge_into_the_profiles() -> None:
    from docanalyst.engines.vllm import _llm_kwargs, with_overrides

    base = _llm_kwargs(get_profile("qwen3-next-1m"), "/m")
    merged = with_overrides(base, {"hf_overrides": {"max_position_embeddings": 5}, "max_num_seqs": 1})
    assert merged["hf_overrides"] == {**base["hf_overrides"], "max_position_embeddings": 5}
    assert merged["max_num_seqs"] == 1 and base["max_num_seqs"] == 4


def test_a_misspelt_engine_argument_names_the_right_one() -> None:
    from docanalyst.engines.vllm import check_engine_args

    check_engine_args({"load_format": "dummy", "tensor_parallel_size": 1, "max_num_seqs": 2})
    with pytest.raises(ConfigError, match=r"unknown engine argument 'load_fromat' .*; did you mean load_format\?"):
        check_engine_args({"load_fromat": "dummy"})


# ---- what a run records, and when a stored run answers again --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "model"),
    [
        ({}, EMBEDDED_NAME),
        ({"tensor_parallel_size": 2, "max_num_seqs": 4, "gpu_memory_utilization": 0.5}, EMBEDDED_NAME),
        ({"load_format": "auto", "enforce_eager": True}, EMBEDDED_NAME),  # the profile's own values
        ({"load_format": "dummy"}, f"{EMBEDDED_NAME} [load_format=dummy]"),
        ({"dtype": "bfloat16", "max_num_seqs": 2}, f"{EMBEDDED_NAME} [dtype=bfloat16]"),
        ({"dtype": "float32"}, EMBEDDED_NAME),  # the embedded profile runs in float32 already
        ({"some_new_flag": 1}, f"{EMBEDDED_NAME} [some_new_flag=1]"),  # unknown: it may change the output
    ],
)
def test_arguments_that_change_the_output_mark_the_model(settings, args, model) -> None:
    config = replace(settings, engine_args=args)
    ref, name = planning.resolve_model(config, get_profile("embedded"), None)
    assert (Path(ref).name, name) == (EMBEDDED_NAME, model)


def test_a_long_argument_is_marked_by_its_digest(settings) -> None:
    config = replace(settings, engine_args={"hf_overrides": {"rope_parameters": {"factor": 2.0, "x": "y" * 80}}})
    name = planning.resolve_model(config, get_profile("embedded"), None)[1]
    assert re.fullmatch(rf"{EMBEDDED_NAME} \[args-[0-9a-f]{{12}}\]", name), name


def _extract(settings: Settings, engine_args: dict[str, object], *, early: bool = False):  # type: ignore[no-untyped-def]
    built: list[FakeEngine] = []

    def factory(profile, model_ref):  # type: ignore[no-untyped-def]
        built.append(FakeEngine(profile, [(GOOD, "stop")]))
        built[-1].thread = threading.current_thread().name  # type: ignore[attr-defined]
        return built[-1]

    config = replace(settings, engine_args=engine_args)
    analyzer = Analyzer(config, pool=EnginePool(config, factory))
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], EMBEDDED, early_start=early)
    analyzer.close()
    return outcome, built


def test_the_run_records_its_engine_and_a_dummy_run_is_never_reused_for_a_real_one(settings) -> None:
    first, _ = _extract(settings, {})
    dummy, _ = _extract(settings, {"load_format": "dummy"})
    faster, built = _extract(settings, {"max_num_seqs": 2})
    assert (first.status, dummy.status, faster.status) == ("ok", "ok", "cached")
    assert faster.run_id == first.run_id and dummy.run_id != first.run_id and built == []
    assert dummy.model == f"{EMBEDDED_NAME} [load_format=dummy]"
    store = Analyzer(settings).store
    recorded = [json.loads(store.get_run(o.run_id)[0].sampling_json)["engine"] for o in (first, dummy)]  # type: ignore[index,arg-type]
    assert recorded == [
        {"backend": "in-process", "url": None, "args": {}},
        {"backend": "in-process", "url": None, "args": {"load_format": "dummy"}},
    ]


def test_a_server_run_records_its_base_url_and_never_the_key(settings) -> None:
    from docanalyst.generation import engine_record

    config = replace(settings, engine="http://127.0.0.1:8008/v1/", api_key="secret")
    assert engine_record(config) == {"backend": "server", "url": "http://127.0.0.1:8008", "args": {}}


# ---- the engine starts while the document is read ---------------------------------------------------------------


def test_early_start_builds_the_engine_in_the_background_and_gives_the_same_run(settings, tmp_path) -> None:
    plain, _ = _extract(settings, {})
    early, built = _extract(replace(settings, db_url=f"sqlite:///{tmp_path / 'early.db'}"), {}, early=True)
    assert [b.thread for b in built] == ["docanalyst-engine"]  # type: ignore[attr-defined]
    assert (early.status, early.result, early.model) == (plain.status, plain.result, plain.model)
    again, built = _extract(replace(settings, db_url=f"sqlite:///{tmp_path / 'early.db'}"), {}, early=True)
    assert again.status == "cached" and built == []  # a stored answer: no engine is started at all


def test_early_start_skips_files_that_are_not_pdfs(settings, tmp_path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"not a pdf")
    built: list[str] = []
    pool = EnginePool(settings, lambda p, r: built.append(r) or FakeEngine(p))  # type: ignore[func-returns-value]
    Analyzer(settings, pool=pool).start_engine_early([junk, tmp_path / "missing.pdf"], EMBEDDED)
    pool.close()
    assert built == [] and pool.loaded() == []


def test_a_failed_early_start_is_the_same_error_once(settings) -> None:
    calls: list[str] = []

    def broken(profile, model_ref):  # type: ignore[no-untyped-def]
        calls.append(threading.current_thread().name)
        raise RuntimeError("CUDA out of memory\n(a long trace)")

    analyzer = Analyzer(settings, pool=EnginePool(settings, broken))
    [outcome] = analyzer.extract([SAMPLE_CONTRACT], EMBEDDED, early_start=True)
    assert outcome.status == "error" and outcome.run_id is None and analyzer.store.list_runs() == []
    assert str(outcome.error) == "could not start the engine for profile 'embedded': CUDA out of memory"
    assert outcome.error is not None and outcome.error.exit_code == 5
    assert calls == ["docanalyst-engine"]  # the failure is reported, not a second start


def test_closing_the_pool_waits_for_a_start_under_way_and_closes_its_engine(settings) -> None:
    built: list[FakeEngine] = []

    def slow(profile, model_ref):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        built.append(FakeEngine(profile))
        return built[-1]

    pool = EnginePool(settings, slow)
    pool.start_soon(get_profile("embedded"), "/m")
    pool.start_soon(get_profile("embedded"), "/m")  # under way already: nothing more
    pool.close()
    assert len(built) == 1 and built[0].closed and pool.loaded() == []


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script in a fresh process, its own database, no server to look for. Its engine core runs in a
    process of its own, as the session's does: on a CPU that layout, not the thread the engine is started from,
    decides the last bits of the numbers (measured: in-process and separate-process engines can part ways on this
    sample; started on the main thread or a background one, each gives the same run)."""
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1", "DOCANALYST_CPU_KV_GIB": "2"}
    env |= {"DOCANALYST_DB": f"sqlite:///{tmp_path / 'cli.db'}", "DOCANALYST_ENGINE": "local"}
    return subprocess.run(
        [DOCANALYST, *args], capture_output=True, text=True, timeout=900, cwd=ROOT, stdin=subprocess.DEVNULL, env=env
    )


@pytest.mark.engine
@pytest.mark.timeout(1200)
def test_a_real_extract_started_while_reading_stores_the_in_process_run(settings, tmp_path) -> None:
    """The engine starts while the PDF is read, and the run is stored as the in-process engine's, with its engine
    argument. (Its text is not compared with the session engine's: another batch size, another CPU's numerics.)"""
    short = ("--max-output-tokens", "64")  # a short answer (partial, most likely): what counts is where it came from
    proc = _cli(tmp_path, "extract", str(SAMPLE_CONTRACT), "--json", "--engine-arg", "max_num_seqs=4", *short)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert (proc.returncode == 0) == (out["status"] == "ok"), proc.stderr[-3000:]
    assert out["model"] == EMBEDDED_NAME  # max_num_seqs: speed only, so the model's name is unmarked
    run, _doc, _fields = Analyzer(replace(settings, db_url=f"sqlite:///{tmp_path / 'cli.db'}")).store.get_run(
        out["run_id"]
    )  # type: ignore[misc]
    assert (run.status, json.loads(run.result_json)) == (out["status"], out["result"])
    assert json.loads(run.sampling_json)["engine"] == {
        "backend": "in-process",
        "url": None,
        "args": {"max_num_seqs": 4},
    }
    assert out["timings"]["read_s"] > 0 and out["timings"]["engine_start_s"] >= 0
    print("overlapped CLI run: read", out["timings"]["read_s"], "s, then waited", out["timings"]["engine_start_s"], "s")
