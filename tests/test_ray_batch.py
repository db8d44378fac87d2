"""``batch --ray`` on a real two-node Ray cluster on this machine (``ray start --head`` plus a second ``ray start
--address``, loopback only), with the embedded model: one node's worker processes are killed mid-batch, and every
document is still stored exactly once; a second run resumes and stores nothing new.

Also, without a cluster: the ``--ray [ADDRESS]`` command line, the replica sizing and the message without Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from docanalyst.cli.edge import ray_address_optional
from docanalyst.errors import ConfigError
from docanalyst.profiles import get_profile

from conftest import SAMPLES, free_port

DOCUMENTS = 4  # two batches of two: the kill lands while the second is under way
REPLICA = "MapBatches(Replica)"  # in the title Ray gives an engine replica's worker process


def test_ray_takes_an_optional_address() -> None:
    assert ray_address_optional(["batch", "in", "--ray"]) == ["batch", "in", "--ray=local"]
    assert ray_address_optional(["batch", "--ray", "in"]) == ["batch", "--ray=local", "in"]
    assert ray_address_optional(["batch", "--ray", "auto", "in"]) == ["batch", "--ray", "auto", "in"]
    assert ray_address_optional(["batch", "--ray", "10.0.0.5:6379", "x"]) == ["batch", "--ray", "10.0.0.5:6379", "x"]
    assert ray_address_optional(["batch", "x", "--", "--ray"]) == ["batch", "x", "--", "--ray"]


def test_replicas_follow_the_profile(settings) -> None:
    from dataclasses import replace

    from docanalyst.ray_batch import replica_plan

    cpu = replica_plan(get_profile("embedded"), settings, {"CPU": 4.0}, None)
    assert (cpu.replicas, cpu.num_cpus, cpu.num_gpus) == (1, 1.0, 0.0)
    assert cpu.env["OMP_NUM_THREADS"] == str(os.cpu_count())
    gpu = replica_plan(get_profile("qwen3-next"), settings, {"GPU": 2.0}, None)
    assert (gpu.replicas, gpu.num_gpus) == (2, 1.0)
    tp2 = replace(settings, engine_args={"tensor_parallel_size": 2})
    assert replica_plan(get_profile("qwen3-next"), tp2, {"GPU": 4.0}, None).replicas == 2
    with pytest.raises(ConfigError, match=r"needs 2 GPU\(s\) per replica; the Ray cluster has 1"):
        replica_plan(get_profile("qwen3-next"), tp2, {"GPU": 1.0}, None)


def test_without_ray_the_message_says_how_to_get_it(monkeypatch) -> None:
    from docanalyst import ray_batch

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when the extra is missing
    hint = r'--ray needs Ray, which is not installed: install the Ray extra: pip install -e "\.\[ray\]"'
    with pytest.raises(ConfigError, match=hint):
        ray_batch.import_ray()


# ---- the two-node cluster --------------------------------------------------------------------------------------


LOOPBACK_ENV = {"RAY_AUTH_MODE": "disabled"}  # a loopback-only test cluster: no token to hand the CLI


def _ray(*args: str, check: bool = True) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    done = subprocess.run([ray, *args], capture_output=True, text=True, timeout=180, env={**os.environ, **LOOPBACK_ENV})
    if check and done.returncode:
        raise RuntimeError(f"ray {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head node that only coordinates (no CPU slot: Ray's own actors live there) and a worker node with two
    CPU slots, where every read and the engine replica run; its address once both nodes are up."""
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--object-store-memory=200000000", "--disable-usage-stats"]
    try:
        _ray("start", "--head", f"--port={port}", "--include-dashboard=false", "--num-cpus=0", *common)
        _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=2", *common)
        wait_for_nodes(f"127.0.0.1:{port}", 2)
        yield f"127.0.0.1:{port}"
    finally:
        _ray("stop", "--force", check=False)


def wait_for_nodes(address: str, count: int, timeout_s: float = 60) -> None:
    """A node registers a few seconds after ``ray start`` returns: wait until ``ray status`` lists them all."""
    ray = str(Path(sys.executable).with_name("ray"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = subprocess.run([ray, "status", f"--address={address}"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, **LOOPBACK_ENV})  # fmt: skip
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if active.count("node_") >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} has fewer than {count} nodes after {timeout_s:.0f} s")


def distinct_documents(folder: Path) -> Path:
    """DOCUMENTS distinct files (bytes after %%EOF change the sha256, not the text): one prompt prefix, cached."""
    folder.mkdir()
    data = (SAMPLES / "harborpeak-quillon-nda.pdf").read_bytes()
    for i in range(DOCUMENTS):
        (folder / f"nda-{i}.pdf").write_bytes(data + f"\n% copy {i}\n".encode())
    return folder


def runs_per_document(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select document_sha256, count(*) from runs group by document_sha256").fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return {}
    finally:
        con.close()
    return dict(rows)


def kill_replica_node_workers() -> tuple[int, psutil.Process]:
    """SIGKILL every worker process (with its children: the engine, readers) of the node that runs the engine
    replica. Its raylet and the raylet's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``, whose death
    would take the raylet with them) stay: the node lives on, its work is lost. How many processes died."""
    replica = next(p for p in psutil.process_iter(["cmdline"]) if REPLICA in " ".join(p.info["cmdline"] or []))
    raylet = replica.parent()
    assert raylet is not None and "raylet" in raylet.name()
    titles = {w: " ".join(w.cmdline()).strip() for w in raylet.children()}  # a title is padded with spaces
    victims = [w for w, title in titles.items() if title.startswith("ray::") and not title.endswith("Agent")]
    victims += [c for w in victims for c in w.children(recursive=True)]
    for proc in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    return len(victims), raylet


def kill_node(raylet: psutil.Process) -> None:
    """The whole node: its raylet and everything below it."""
    for proc in [*raylet.children(recursive=True), raylet]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)


@pytest.mark.engine
def test_a_killed_node_loses_and_duplicates_nothing(cluster, tmp_path, base_settings) -> None:
    folder = distinct_documents(tmp_path / "inbox")
    db = tmp_path / "ray.db"
    env = {**os.environ, **LOOPBACK_ENV, "DOCANALYST_DB": f"sqlite:///{db}", "DOCANALYST_CPU_KV_GIB": "2"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the CLI's own default
    cmd = [sys.executable, "-m", "docanalyst.cli", "batch", str(folder), "--template", "generic", "--ray", cluster,
           "--batch-size", "2", "--max-output-tokens", "48", "--jsonl"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and not runs_per_document(db):
            time.sleep(0.5)
        assert proc.poll() is None, f"the batch ended before the kill: {proc.communicate()[1].decode()[-3000:]}"
        killed, raylet = kill_replica_node_workers()
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed >= 1
    lines = [json.loads(line) for line in out.decode().splitlines()]  # nothing but result lines on stdout
    stored = runs_per_document(db)
    assert proc.returncode in (0, 1), err.decode()[-3000:]
    assert len(lines) == DOCUMENTS and {line["status"] for line in lines} <= {"ok", "partial", "truncated"}
    assert len(stored) == DOCUMENTS and set(stored.values()) == {1}  # every document once: none lost, none twice
    assert sorted(line["run_id"] for line in lines) == sorted(range(1, DOCUMENTS + 1))

    again = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    statuses = [json.loads(line)["status"] for line in again.stdout.decode().splitlines()]
    assert again.returncode == 0 and statuses == ["cached"] * DOCUMENTS, again.stderr.decode()[-3000:]
    assert runs_per_document(db) == stored

    # The worker node dies and none replaces it: the command gives up after its grace, with a plain line.
    kill_node(raylet)
    one = tmp_path / "one"
    one.mkdir()
    (one / "late.pdf").write_bytes((folder / "nda-0.pdf").read_bytes() + b"\n% late\n")
    late = subprocess.run([*cmd[:4], str(one), *cmd[5:]], env={**env, "DOCANALYST_RAY_GRACE_S": "10"},
                          capture_output=True, timeout=300)  # fmt: skip
    said = late.stderr.decode()
    assert late.returncode != 0 and late.stdout == b"" and "Traceback" not in said, said[-3000:]
    assert (
        "error: the Ray cluster has had no room for an engine replica (1 engine replica(s), 1 CPU each) for 10 s"
        in said
    )
    assert runs_per_document(db) == stored
