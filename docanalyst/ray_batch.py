"""``docanalyst batch --ray``: the same batch as a Ray Data job, for a folder bigger than one machine.

Why Ray Data rather than our own scheduler: it streams, shards, places work on nodes by their resources and
retries what a dead node was doing; a local batch (batch.py) does none of that across machines.

The job: the folder's paths -> reading, in Ray tasks (each runs the reader process of isolation.py, bounded in
time and memory exactly as in a local batch) -> engine replicas, a Ray Data actor pool (each replica is an
Analyzer with an engine of its own: it admits, so a stored run is reused, then generates, re-asks and grounds,
but never writes) -> this process, the one writer, which commits each document in its own transaction as its
row arrives. Progress, the JSONL lines and the exit codes are the local batch's.

Exactly once: a row that Ray delivers again (a task retried after its node died) is stored once (the writer
keeps the indices it stored), and a batch stopped at any moment resumes like a local one (the replicas' admit
finds the runs already stored).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from docanalyst import planning
from docanalyst.batch import Event, unread_outcome
from docanalyst.config import Settings
from docanalyst.errors import ConfigError, DocanalystError
from docanalyst.pipeline import Analyzer, ExtractOptions, Outcome, Prepared
from docanalyst.profiles import EngineProfile
from docanalyst.runs import RunRecord
from docanalyst.statuses import BatchEvent

WATCH_EVERY_S = 5.0  # how often the writer looks at the cluster while no row comes


def _grace_s() -> float:
    """How long a job waits for room for a replica after its nodes are lost (DOCANALYST_RAY_GRACE_S, 300 s)."""
    raw = os.environ.get("DOCANALYST_RAY_GRACE_S", "300")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"DOCANALYST_RAY_GRACE_S={raw!r}: give a number of seconds") from None


INSTALL_HINT = 'install the Ray extra: pip install -e ".[ray]" (or pip install "docanalyst[ray]")'


def import_ray() -> Any:
    """Ray, or a ConfigError that says how to get it (it is an optional extra)."""
    # The driver connects explicitly (connect); without this, a Ray Data thread still running after a failed
    # job was given up would start or join a cluster of its own.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class ReplicaPlan:
    """How many engine replicas the job runs and what each one asks of its node."""

    replicas: int
    num_cpus: float
    num_gpus: float
    env: Mapping[str, str]

    def describe(self) -> str:
        each = f"{self.num_gpus:g} GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"
        return f"{self.replicas} engine replica(s), {each} each"


def replica_plan(
    profile: EngineProfile, settings: Settings, resources: Mapping[str, float], requested: int | None
) -> ReplicaPlan:
    """The one place that sizes the replicas, from the profile. A GPU profile: ``tensor_parallel_size`` GPUs per
    replica and as many replicas as the cluster's GPUs allow (``--replicas`` caps it). A CPU profile: one CPU slot
    per replica for scheduling, while the engine's threads use the node's cores (Ray would pin them to one
    thread through OMP_NUM_THREADS), one replica unless asked."""
    if profile.device == "cpu":
        cores = str(os.cpu_count() or 1)
        return ReplicaPlan(requested or 1, 1.0, 0.0, {"OMP_NUM_THREADS": cores})
    tp = int(
        str(settings.engine_args.get("tensor_parallel_size") or profile.engine_kwargs.get("tensor_parallel_size", 1))
    )
    gpus = int(resources.get("GPU", 0))
    if gpus < tp:
        raise ConfigError(f"profile {profile.name} needs {tp} GPU(s) per replica; the Ray cluster has {gpus}")
    fit = gpus // tp
    return ReplicaPlan(min(requested or fit, fit), 0.0, float(tp), {})


_CONSOLE = ("<stderr>", "<stdout>")


def connect(ray: Any, address: str) -> bool:
    """Join the cluster at ``address`` ("auto": the one in RAY_ADDRESS) or, for "local", start one for this run.
    True when this call connected (the caller then disconnects, which also stops a local Ray); False when the
    process was connected already (a program using docanalyst as a library keeps its connection)."""
    if ray.is_initialized():
        return False
    # Ray's own chatter stays in its session logs (/tmp/ray/session_*/logs): the command prints progress and
    # results. Its C++ core would log an error for every restartable actor whose constructor arguments live in
    # the object store, as Ray Data's always do (ray-project/ray#53727); they live on the driver's node, which
    # the job cannot outlive anyway. (Setting the level makes Ray print one line that says so.)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    for handler in logging.getLogger("ray.data").handlers:  # its console only: its session log file keeps all
        if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "name", "") in _CONSOLE:
            handler.setLevel(logging.CRITICAL)
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address == "local":
            # Ray runs its workers at nice 15: an engine replica then yields its cores to Ray's own processes,
            # and a CPU engine's threads wait for each other. On 2 cores the replica decoded 5.1 tokens/s at nice
            # 15 and 5.9 at 0 (in-process: 6.8; one run each). A cluster started with `ray start` is the
            # operator's to set (README).
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {first}") from exc
    return True


def _read(row: dict[str, Any], settings: Settings, options: ExtractOptions) -> dict[str, Any]:
    """A Ray task: one file read, checked and measured in a reader process (isolation.prepare_isolated)."""
    import cloudpickle

    from docanalyst.isolation import prepare_isolated

    result: Prepared | DocanalystError
    try:
        result = prepare_isolated(settings, row["path"], options)
    except DocanalystError as exc:
        result = exc
    return {"index": row["index"], "payload": cloudpickle.dumps((row["path"], result))}


class _Computing(Analyzer):
    """An Analyzer that computes runs and keeps them for the writer instead of storing them."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.kept: dict[str, RunRecord] = {}  # by document path: unique within one replica call

    def keep(self, record: RunRecord) -> int | None:
        self.kept[record.document.path] = record
        return None


class Replica:
    """One engine replica (a Ray Data actor): documents in, (outcome, run to store) out. Its engine starts with
    the actor and serves every batch the pool gives it."""

    def __init__(self, blob: bytes) -> None:
        import cloudpickle

        settings, self.options = cloudpickle.loads(blob)
        self.analyzer = _Computing(settings)
        # The engine starts with the replica, while the first files are read (as a local batch starts it early);
        # a failed start is reported on every document that needed it (EnginePool.get raises it there).
        target = planning.engine_target(settings, self.options)
        if target is not None:
            self.analyzer.pool.start_soon(target[0], target[1])

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import cloudpickle

        indices = [int(i) for i in batch["index"]]
        answers: dict[int, tuple[Outcome, RunRecord | None]] = {}
        jobs = []
        for index, payload in zip(indices, batch["payload"], strict=True):
            path, read = cloudpickle.loads(payload)
            admitted = self._admit(path, read)
            if isinstance(admitted, Outcome):
                answers[index] = (admitted, None)
            else:
                jobs.append((index, admitted))
        self.analyzer.kept.clear()
        for (index, _), outcome in zip(jobs, self.analyzer.generate([j for _, j in jobs], self.options), strict=True):
            answers[index] = (outcome, self.analyzer.kept.get(outcome.path))
        return {"index": indices, "payload": [cloudpickle.dumps(answers[i]) for i in indices]}

    def _admit(self, path: str, read: Prepared | DocanalystError) -> Any:
        try:
            if isinstance(read, DocanalystError):
                raise read
            return self.analyzer.admit(read, self.options)
        except DocanalystError as exc:
            return unread_outcome(path, exc)

    def __del__(self) -> None:
        self.analyzer.close()


def job(ray: Any, settings: Settings, options: ExtractOptions, paths: Sequence[Path], plan: ReplicaPlan,
        batch_size: int) -> Any:  # fmt: skip
    """The Ray Data job: one row per file (its index and path) through reading and the replicas."""
    import cloudpickle

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own bar
    context.print_on_execution_start = False
    rows = [{"index": i, "path": str(p)} for i, p in enumerate(paths)]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    # Ray's defaults are the fault tolerance: a task lost with its node runs again (3 times), a replica lost with
    # its node starts again (no limit) and the batch it held is given to the pool again.
    dataset = dataset.map(_read, fn_kwargs={"settings": settings, "options": options}, num_cpus=1)
    return dataset.map_batches(
        Replica,
        fn_constructor_kwargs={"blob": cloudpickle.dumps((settings, options))},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=plan.replicas),
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
        runtime_env={"env_vars": dict(plan.env)},
    )


def collect(store_run: Callable[[RunRecord], int], rows: Iterator[dict[str, Any]], paths: Sequence[Path],
            emit: Event) -> list[Outcome]:  # fmt: skip
    """The one writer: each row's run committed in its own transaction, a row seen before ignored."""
    import cloudpickle

    outcomes: list[Outcome | None] = [None] * len(paths)
    for row in rows:
        index = int(row["index"])
        if outcomes[index] is not None:
            continue  # delivered again after a retry: stored once
        outcome, record = cloudpickle.loads(row["payload"])
        if record is not None:
            outcome = replace(outcome, run_id=store_run(record))
        outcomes[index] = outcome
        if outcome.document is not None:
            tokens = outcome.budget.prompt_tokens if outcome.budget else 0
            emit(BatchEvent.READ, None, {"pages": outcome.document.page_count, "tokens": tokens})
        emit(BatchEvent.DONE, outcome, {})
    missing = [str(paths[i]) for i, o in enumerate(outcomes) if o is None]
    if missing:
        raise DocanalystError(f"the Ray job ended without an answer for {len(missing)} file(s), first {missing[0]}")
    return [o for o in outcomes if o is not None]


class Watched:
    """The job's rows, given up on when the cluster has had no room for a replica for ``grace_s``: Ray waits
    for resources forever (a lost node may come back), a command must not. What was stored stays; the same
    command resumes."""

    def __init__(self, ray: Any, rows: Iterator[dict[str, Any]], plan: ReplicaPlan, grace_s: float) -> None:
        self.ray, self.plan, self.grace_s = ray, plan, grace_s
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, args=(rows,), name="docanalyst-ray-rows", daemon=True).start()

    def _pump(self, rows: Iterator[dict[str, Any]]) -> None:
        try:
            for row in rows:
                self.queue.put(("row", row))
            self.queue.put(("end", None))
        except BaseException as exc:  # the job's own failure, raised in the writer
            self.queue.put(("error", exc))

    def _room(self) -> bool:
        have = self.ray.cluster_resources()
        return have.get("CPU", 0) >= self.plan.num_cpus and have.get("GPU", 0) >= self.plan.num_gpus

    def __iter__(self) -> Iterator[dict[str, Any]]:
        no_room_since: float | None = None
        while True:
            try:
                kind, item = self.queue.get(timeout=WATCH_EVERY_S)
            except queue.Empty:
                if self._room():
                    no_room_since = None
                    continue
                no_room_since = no_room_since or time.monotonic()
                if time.monotonic() - no_room_since < self.grace_s:
                    continue
                raise DocanalystError(
                    f"the Ray cluster has had no room for an engine replica ({self.plan.describe()}) for "
                    f"{self.grace_s:.0f} s: its nodes were lost. What was done is stored; run the same command "
                    "again once nodes are back (it resumes)"
                ) from None
            if kind == "end":
                return
            if kind == "error":
                if isinstance(item, DocanalystError):
                    raise item
                first = (str(item).strip().splitlines() or [type(item).__name__])[0]
                raise DocanalystError(f"the Ray job failed: {first}") from item
            yield item


def run_batch_ray(
    analyzer: Analyzer,
    paths: Sequence[Path],
    options: ExtractOptions,
    *,
    address: str = "local",
    replicas: int | None = None,
    batch_size: int = 16,
    on_event: Event | None = None,
) -> list[Outcome]:
    """``run_batch`` on a Ray cluster (see the module's docstring); the same outcomes and events."""
    settings = analyzer.settings
    if settings.engine_url:
        raise ConfigError("--ray starts engine replicas on the cluster: leave out --engine (or DOCANALYST_ENGINE)")
    ray = import_ray()
    emit = on_event or (lambda _kind, _outcome, _info: None)
    profile = planning.requested_profile(settings, options)
    store_run = analyzer.store.store_run  # opened (and migrated) here, before any replica reads it
    started = connect(ray, address)
    try:
        plan = replica_plan(profile, settings, ray.cluster_resources(), replicas)
        emit(BatchEvent.ENGINE, None, {"documents": len(paths), "replicas": plan.describe()})
        dataset = job(ray, settings, options, paths, plan, max(1, batch_size))
        rows = Watched(ray, dataset.iter_rows(), plan, _grace_s())
        return collect(store_run, iter(rows), paths, emit)
    finally:
        if started:
            # before the command's output is restored: Ray's driver prints the cluster's messages it still
            # holds (a retried task, a lost node) when it disconnects, and they belong on stderr
            ray.shutdown()
