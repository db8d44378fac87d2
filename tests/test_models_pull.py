"""``docanalyst models pull`` and ``models list`` through the real CLI, against a stand-in for the Hugging Face hub.

The stand-in is a threading HTTP server on 127.0.0.1 serving a few small files under the endpoints the installed
huggingface_hub (2.x) calls: ``GET /api/models/{repo}/revision/{rev}`` (``blobs=True``: siblings with sizes, the
commit sha), ``GET /api/models/{repo}/tree/{rev}`` (the file list snapshot_download caches),
``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag``, ``Content-Length`` and ``Range``,
and ``GET /api/agent-harnesses`` (a registry huggingface_hub's user-agent telemetry fetches once a day). It never
sends the ``X-Xet-Hash`` header nor a tree ``xetHash``, so huggingface_hub takes its plain HTTP path (a request to
any other route is recorded and fails the test). ``HF_ENDPOINT`` points at it; ``HF_HOME`` and ``HF_HUB_CACHE``
are in tmp_path. No engine is started.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

REPO = "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8"  # the qwen3-next profile's model, as the stand-in serves it
CACHE_NAME = "models--Qwen--Qwen3-Next-80B-A3B-Instruct-FP8"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
TOKENIZER = ("tokenizer.json", "tokenizer_config.json")
DOCANALYST = Path(sys.executable).parent / "docanalyst"


@cache
def _repo_files() -> dict[str, bytes]:
    """A small repository: the second shard is over huggingface_hub's 10 MiB read chunk, so a download cut
    halfway has a finished chunk on disk to resume after."""
    rng = random.Random(14)
    return {
        "config.json": json.dumps({"architectures": ["Qwen3NextForCausalLM"], "vocab_size": 151936}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}).encode(),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}).encode(),
        "model.safetensors.index.json": json.dumps(
            {"weight_map": {"a.weight": SHARDS[0], "b.weight": SHARDS[1]}}
        ).encode(),
        SHARDS[0]: rng.randbytes(3_000_000),
        SHARDS[1]: rng.randbytes(24_000_000),
        "original/consolidated.pth": b"another weight format: a full pull skips it",
    }


@dataclass
class Hub:
    """What the stand-in serves and what it saw. ``repos``: files as bytes, or as an advertised size only."""

    repos: dict[str, dict[str, bytes | int]]
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, file or route, Range)
    unknown: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # files sent to the end
    cut_once: set[str] = field(default_factory=set)  # the first GET of these stops halfway: the connection closes
    reset_after_others: bool = False  # ... by a reset, once every other file was sent (else by a plain close)
    stall_once: set[str] = field(default_factory=set)  # the first GET of these sends half, then waits for `release`
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def resolves(self, method: str = "GET") -> list[str]:
        return [name for m, name, _ in self.log if m == method and not name.startswith("/")]


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
            if parts == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent telemetry, once a day
                hub.log.append(("GET", "/api/agent-harnesses", None))
                return self._send(200, json.dumps({"standardEnvVars": [], "harnesses": {}}).encode(), {})
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                return self._api("/".join(parts[2:4]), parts[4], parts[5])
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
            hub.unknown.append(f"{self.command} {self.path}")
            self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})

        def _api(self, repo: str, kind: str, revision: str) -> None:
            hub.log.append(("GET", f"/api/{kind}", None))
            files = hub.repos.get(repo)
            if files is None:
                return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})
            if revision not in ("main", COMMIT):
                return self._send(404, b"{}", {"X-Error-Code": "RevisionNotFound"})
            sizes = {name: len(data) if isinstance(data, bytes) else data for name, data in files.items()}
            if kind == "revision":
                siblings = [{"rfilename": n, "size": s, "blobId": _oid(n)} for n, s in sizes.items()]
                answer: Any = {"id": repo, "sha": COMMIT, "siblings": siblings}
            else:
                answer = [{"type": "file", "path": n, "size": s, "oid": _oid(n)} for n, s in sizes.items()]
            self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

        def _file(self, repo: str, revision: str, name: str, body: bool) -> None:
            byte_range = self.headers.get("Range")
            hub.log.append((self.command, name, byte_range))
            data = hub.repos.get(repo, {}).get(name)
            if not isinstance(data, bytes) or revision not in ("main", COMMIT):
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
            headers["Accept-Ranges"] = "bytes"
            start = int(byte_range.removeprefix("bytes=").split("-")[0]) if byte_range else 0
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            if not body:
                return self._send(200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
            if name in hub.stall_once and not start:
                hub.stall_once.discard(name)
                return self._stall(data, headers)
            if name in hub.cut_once and not start:
                hub.cut_once.discard(name)
                return self._cut(data, headers, name)
            self._send(206 if start else 200, data[start:], headers)
            hub.sent.append(name)

        def _cut(self, data: bytes, headers: dict[str, str], name: str) -> None:
            """Half the file, then the connection ends: closed (the client sees a body cut short) or reset."""
            if hub.reset_after_others:
                others = {n for n, d in hub.repos[REPO].items() if isinstance(d, bytes) and n != name}
                others.discard("original/consolidated.pth")
                deadline = time.monotonic() + 10
                while not others <= set(hub.sent) and time.monotonic() < deadline:
                    time.sleep(0.02)
            self.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if hub.reset_after_others:  # SO_LINGER 0: close sends RST, as a dropped NAT entry or proxy does
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            self.close_connection = True

        def _stall(self, data: bytes, headers: dict[str, str]) -> None:
            self._send(200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            hub.stalled.set()
            hub.release.wait(30)
            self.close_connection = True

        def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _oid(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


@pytest.fixture
def hub() -> Iterator[Hub]:
    state = Hub(repos={REPO: dict(_repo_files()), "big/model": {"config.json": b"{}", "model.safetensors": 2**50}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert state.unknown == []  # nothing but the routes above was asked for (no xet, no other API)


@pytest.fixture
def env(hub: Hub, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_"))}
    return {
        **clean,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "DOCANALYST_HOME": str(tmp_path / "home"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DOCANALYST), *args], env=env, capture_output=True, text=True, timeout=60)


def snapshot(env: dict[str, str]) -> Path:
    return Path(env["HF_HUB_CACHE"]) / CACHE_NAME / "snapshots" / COMMIT


def qwen_entry(env: dict[str, str]) -> dict[str, Any]:
    listing = cli(env, "models", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    entries = {p["name"]: p for p in json.loads(listing.stdout)["profiles"]}
    keys = ("source", "location", "weights", "tokenizer", "size_bytes")
    assert [entries["qwen3-next"][k] for k in keys] == [entries["qwen3-next-1m"][k] for k in keys]  # one model
    return dict(entries["qwen3-next"])


def test_tokenizer_only_then_the_whole_model_land_in_the_cache_and_list_shows_them(
    hub: Hub, env: dict[str, str]
) -> None:
    done = cli(env, "models", "pull", "qwen3-next", "--tokenizer-only")
    assert done.returncode == 0, done.stderr
    assert sorted(hub.resolves()) == sorted(TOKENIZER)  # nothing but the tokenizer was fetched
    assert sorted(p.name for p in snapshot(env).iterdir()) == sorted(TOKENIZER)
    assert done.stdout.strip() == str(snapshot(env))
    entry = qwen_entry(env)
    assert (entry["weights"], entry["tokenizer"], entry["location"]) == (False, True, str(snapshot(env)))

    hub.log.clear()
    hub.cut_once = {SHARDS[1]}  # the connection closes halfway through the large shard, once
    done = cli(env, "models", "pull", REPO)
    assert done.returncode == 0, done.stderr
    files = _repo_files()
    wanted = sorted(n for n in files if not n.startswith("original/"))
    assert sorted(set(hub.resolves())) == sorted(set(wanted) - set(TOKENIZER))  # the cached tokenizer is not fetched
    assert "27.0 MB to download (2 files" in done.stderr, done.stderr  # the size, before it starts
    ranges = [r for m, name, r in hub.log if m == "GET" and name == SHARDS[1]]
    resumed_at = int(str(ranges[-1]).removeprefix("bytes=").rstrip("-"))
    assert ranges[0] is None and len(ranges) == 2 and 0 < resumed_at <= len(files[SHARDS[1]]) // 2, ranges
    for name in wanted:
        assert (snapshot(env) / name).read_bytes() == files[name]  # the resumed shard too, byte for byte
    assert not (snapshot(env) / "original").exists()
    entry = qwen_entry(env)
    assert (entry["weights"], entry["tokenizer"]) == (True, True)
    assert entry["size_bytes"] == sum(len(files[n]) for n in wanted)

    hub.log.clear()
    offline = cli({**env, "HF_HUB_OFFLINE": "1"}, "models", "pull", "qwen3-next")
    assert offline.returncode == 0, offline.stderr
    assert "complete in the cache" in offline.stderr and offline.stdout.strip() == str(snapshot(env))
    assert hub.log == []


def test_a_failed_download_completes_on_the_next_run_without_fetching_finished_files(
    hub: Hub, env: dict[str, str]
) -> None:
    hub.cut_once, hub.reset_after_others = {SHARDS[1]}, True
    failed = cli(env, "models", "pull", "qwen3-next")
    assert failed.returncode == 1, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the download of {REPO} from {hub.url} stopped"), failed.stderr
    assert "run the same command again" in last and str(Path(env["HF_HUB_CACHE"]) / CACHE_NAME) in last
    assert sorted(hub.sent) == sorted(n for n in _repo_files() if n != SHARDS[1] and not n.startswith("original/"))
    assert not (snapshot(env) / SHARDS[1]).exists()

    hub.log.clear()
    done = cli(env, "models", "pull", "qwen3-next")
    assert done.returncode == 0, done.stderr
    assert hub.resolves("GET") == [SHARDS[1]] and hub.resolves("HEAD") == [SHARDS[1]]  # only what was missing
    assert "(5 files," in done.stderr, done.stderr  # the finished files counted as already in the cache
    assert (snapshot(env) / SHARDS[1]).read_bytes() == _repo_files()[SHARDS[1]]


def test_ctrl_c_stops_a_download_at_once_and_the_next_run_clears_its_partial_file(
    hub: Hub, env: dict[str, str]
) -> None:
    hub.stall_once = {SHARDS[1]}
    proc = subprocess.Popen(
        [str(DOCANALYST), "models", "pull", "qwen3-next"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert hub.stalled.wait(30), "the download never reached the large shard"
        blobs = Path(env["HF_HUB_CACHE"]) / CACHE_NAME / "blobs"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every other file finished, the shard's first 10 MiB chunk on disk
            partials = list(blobs.glob("*.incomplete"))
            if len(set(hub.sent)) == 5 and len(partials) == 1 and partials[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr
    assert time.monotonic() - asked < 8, "Ctrl-C waited for the files in flight"  # the stalled shard never ends
    assert len(partials) == 1 and partials[0].exists()  # the stopped file's partial copy is left behind...

    hub.release.set()
    hub.log.clear()
    done = cli(env, "models", "pull", "qwen3-next")
    assert done.returncode == 0, done.stderr
    assert "MB of partial files a stopped download left" in done.stderr and not partials[0].exists()  # ...until now
    assert hub.resolves("GET") == [SHARDS[1]]
    assert (snapshot(env) / SHARDS[1]).read_bytes() == _repo_files()[SHARDS[1]]


def test_a_download_that_does_not_fit_the_disk_is_refused_before_it_starts(hub: Hub, env: dict[str, str]) -> None:
    refused = cli(env, "models", "pull", "big/model")  # the hub says 1.1 PB: larger than any disk here
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert line.startswith("error: big/model needs 1,125.9 TB more but only ") and "\n" not in line, line
    assert f"free in {env['HF_HUB_CACHE']}" in line and "HF_HUB_CACHE" in line
    assert hub.resolves("GET") == [] and hub.resolves("HEAD") == []

    unknown = cli(env, "models", "pull", "nobody/nothing")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"error: no model nobody/nothing on {hub.url} (a private one needs HF_TOKEN)"


def test_an_offline_host_is_told_which_folder_to_copy_in(hub: Hub, env: dict[str, str]) -> None:
    folder = str(Path(env["HF_HUB_CACHE"]) / CACHE_NAME)
    offline = cli({**env, "HF_HUB_OFFLINE": "1"}, "models", "pull", "qwen3-next")
    assert offline.returncode == 2, offline.stderr
    line = offline.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: cannot download {REPO}: HF_HUB_OFFLINE is set"), line
    assert f"to {folder}," in line and "--model FOLDER" in line
    assert hub.log == []

    closed = env["HF_ENDPOINT"].rsplit(":", 1)[0] + ":9"  # the discard port: nothing listens there
    refused = cli({**env, "HF_ENDPOINT": closed}, "models", "pull", "qwen3-next", "--tokenizer-only")
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: cannot download {REPO}: no connection to {closed}"), line
    assert f"to {folder}," in line and "--model FOLDER" in line


def test_local_profiles_are_installed_not_pulled(env: dict[str, str]) -> None:
    missing = cli(env, "models", "pull", "embedded")
    assert missing.returncode == 2
    assert "installed by `docanalyst models install`" in missing.stderr and "\n" not in missing.stderr.strip()
    folder = Path(env["DOCANALYST_HOME"]) / "models" / "qwen3-next-tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    there = cli(env, "models", "pull", "qwen3-next-tiny")
    assert there.returncode == 0 and "installed by `docanalyst models install`" in there.stderr
