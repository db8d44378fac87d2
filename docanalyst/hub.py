"""Hub models (Qwen3-Next) in the Hugging Face cache: what is there, and ``docanalyst models pull``.

The files live where huggingface_hub, transformers and vLLM look for them: the Hugging Face cache (``HF_HUB_CACHE``,
else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``), one folder per repository
(``models--Qwen--Qwen3-Next-80B-A3B-Instruct-FP8``). We never write that layout ourselves: the download is
huggingface_hub's ``snapshot_download`` (its progress bars; a connection dropped mid-file is resumed with a Range
request, and a run that fails keeps every finished file, so running the command again fetches only what is still
missing), and the cache is read through ``try_to_load_from_cache``. Before anything is fetched, the hub's file
metadata gives the size of what is missing, which is checked against the free disk of the cache.

huggingface_hub is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import gc
import importlib
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from docanalyst.errors import ConfigError, DocanalystError
from docanalyst.models import ModelFiles, folder_files
from docanalyst.profiles import PROFILES, EngineProfile

T = TypeVar("T")
# fmt: off
# What a tokenizer needs (tokenizers' tokenizer.json, the chat template) and what older tokenizers ship instead.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model")
# Other weight formats, skipped when the repository has safetensors (what vLLM loads).
_OTHER_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.h5", "*.msgpack", "original/*")
# Where a dropped connection or a refused one shows up, whichever HTTP client this huggingface_hub uses.
_TRANSPORT_ERRORS = (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError"))
_CONNECT_ERRORS = (("httpx2", "ConnectError"), ("httpx2", "TimeoutException"), ("httpx", "ConnectError"),
                   ("httpx", "TimeoutException"), ("requests", "ConnectionError"), ("requests", "Timeout"))
# fmt: on


@dataclass(frozen=True)
class PullPlan:
    """What ``models pull`` will fetch: the hub's files for one revision, split by what the cache already has."""

    repo_id: str
    revision: str
    commit: str
    missing: tuple[tuple[str, int], ...]  # (file, bytes) not in the cache yet
    cached: tuple[tuple[str, int], ...]
    allow: tuple[str, ...] | None
    ignore: tuple[str, ...] | None

    @property
    def missing_bytes(self) -> int:
        return sum(size for _, size in self.missing)

    @property
    def cached_bytes(self) -> int:
        return sum(size for _, size in self.cached)


@dataclass(frozen=True)
class ProfileFiles:
    """Where a profile's model is on this machine (a folder under models/, or a snapshot in the HF cache)."""

    profile: str
    source: Literal["local", "hub"]
    location: Path | None
    files: ModelFiles


def human_bytes(n: int) -> str:
    """Decimal units, as the hub shows sizes: 81.3 GB, 4.0 MB, 512 B."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def cache_dir() -> Path:
    """The Hugging Face cache this process uses (HF_HUB_CACHE, HF_HOME/hub or the default), as huggingface_hub
    computed it when imported."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def repo_cache_folder(repo_id: str) -> Path:
    """``<cache>/models--Org--Name``: the folder a download fills, and the one to copy onto an offline host."""
    from huggingface_hub.file_download import repo_folder_name

    return cache_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")


def endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_id(target: str) -> str:
    """The hub id to pull for ``PROFILE|HUB_ID`` (a local profile is answered before this, see ``local_note``)."""
    profile = PROFILES.get(target)
    if profile is not None:
        return profile.model
    if "/" not in target:
        raise ConfigError(f"unknown profile {target!r}: give a profile ({', '.join(PROFILES)}) or a hub id (Org/Name)")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(target)
    except HFValidationError as exc:
        raise ConfigError(f"{target!r} is not a hub id: {_first_line(exc)}") from None
    return target


def local_note(profile: EngineProfile, models_dir: Path) -> str:
    """What ``models pull`` says for a profile whose model is a local folder (nothing to pull from the hub)."""
    folder = models_dir / (profile.local_folder or "")
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"profile '{profile.name}' is not on the hub: it is installed by `docanalyst models install` "
            f"(into {folder})"
        )
    return f"profile '{profile.name}' is the local folder {folder}, installed by `docanalyst models install`"


class HubUnreachable(ConfigError):
    """The hub cannot be reached (HF_HUB_OFFLINE, no connection): a setting of this host, hence exit 2."""


def offline_error(repo_id: str, why: str) -> HubUnreachable:
    """One line for a host that cannot reach the hub: the cache folder to copy in, or ``--model FOLDER``."""
    return HubUnreachable(
        f"cannot download {repo_id}: {why}. Copy the folder {repo_cache_folder(repo_id).name} from the Hugging Face "
        f"cache of a machine that has it (`docanalyst models pull {repo_id}` there) to {repo_cache_folder(repo_id)}, "
        "or pass --model FOLDER with a downloaded model folder"
    )


def plan_pull(repo_id: str, *, revision: str = "main", tokenizer_only: bool = False) -> PullPlan:
    """Ask the hub which files the revision has and how large they are; nothing is downloaded."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.utils import filter_repo_objects

    if constants.HF_HUB_OFFLINE:
        raise offline_error(repo_id, "HF_HUB_OFFLINE is set")
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:
        raise _hub_error(exc, repo_id, revision) from None
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    allow, ignore = _patterns(tokenizer_only, safetensors=any(f.endswith(".safetensors") for f in sizes))
    chosen = list(filter_repo_objects(sorted(sizes), allow_patterns=allow, ignore_patterns=ignore))
    if not chosen:
        what = "tokenizer files" if tokenizer_only else "files"
        raise ConfigError(f"{repo_id} has no {what} at revision {revision!r} on {endpoint()}")
    commit = str(info.sha or revision)
    have = {f for f in chosen if isinstance(try_to_load_from_cache(repo_id, f, revision=commit), str)}
    return PullPlan(
        repo_id=repo_id,
        revision=revision,
        commit=commit,
        missing=tuple((f, sizes[f]) for f in chosen if f not in have),
        cached=tuple((f, sizes[f]) for f in chosen if f in have),
        allow=tuple(allow) if allow else None,
        ignore=tuple(ignore) if ignore else None,
    )


def cached_snapshot(repo_id: str, *, revision: str = "main", tokenizer_only: bool = False) -> Path | None:
    """The revision's snapshot when the cache holds every file a pull would fetch (checked against the file
    list the last download recorded), without asking the hub; None otherwise."""
    from huggingface_hub import snapshot_download

    allow, ignore = _patterns(tokenizer_only, safetensors=True)
    try:
        found = snapshot_download(
            repo_id, revision=revision, local_files_only=True, allow_patterns=allow, ignore_patterns=ignore
        )
    except Exception:
        return None
    folder = Path(str(found))
    files = folder_files(folder)  # a folder copied in without the download's file list: look for ourselves
    return folder if files.tokenizer and (tokenizer_only or files.weights) else None


def _patterns(tokenizer_only: bool, *, safetensors: bool) -> tuple[list[str] | None, list[str] | None]:
    """(allow, ignore) for snapshot_download: the tokenizer files only, or all but other weight formats."""
    if tokenizer_only:
        return list(TOKENIZER_FILES), None
    return (None, list(_OTHER_WEIGHTS)) if safetensors else (None, None)


def free_bytes(folder: Path) -> int:
    """Free space on the disk that holds ``folder`` (or, before it exists, its nearest existing parent)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_space(plan: PullPlan) -> int:
    """The free bytes of the cache's disk; a ConfigError when what is missing does not fit there."""
    free = free_bytes(cache_dir())
    if plan.missing_bytes > free:
        raise ConfigError(
            f"{plan.repo_id} needs {human_bytes(plan.missing_bytes)} more but only {human_bytes(free)} is free in "
            f"{cache_dir()}: free some space or point HF_HUB_CACHE (or HF_HOME) at a larger disk"
        )
    return free


def pull(plan: PullPlan) -> Path:
    """Download what the plan lists into the cache (huggingface_hub's progress bars on a terminal); the snapshot
    folder of the revision, with every file of the plan in it."""
    from huggingface_hub import snapshot_download

    def download() -> str:
        folder = snapshot_download(
            plan.repo_id,
            revision=plan.revision,
            allow_patterns=list(plan.allow) if plan.allow else None,
            ignore_patterns=list(plan.ignore) if plan.ignore else None,
        )
        gc.collect()  # its byte bars sit in reference cycles: closed (and drawn complete) now, before our next line
        return str(folder)

    try:
        return Path(_stoppable(download))
    except Exception as exc:
        raise _download_error(exc, plan) from None


def _stoppable(work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread while this (the main) thread waits: a Ctrl-C, raised here by lifecycle, then
    ends the command at once. Inside snapshot_download it would wait for every file in flight to finish first
    (its thread pool joins its workers), i.e. until lifecycle's watchdog gave up on it."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="hub-download", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except BaseException:
        sys.stderr.write("\n")  # end the progress bar's line: the stop's one line goes on its own
        raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def remove_partials(repo_id: str) -> int:
    """Delete what stopped downloads left in the repository's blobs (``<etag>.<id>.incomplete``; huggingface_hub
    never resumes those in a later run), except a file whose lock a running download holds; the bytes freed."""
    from filelock import Timeout
    from huggingface_hub.utils import WeakFileLock

    folder = repo_cache_folder(repo_id)
    locks = cache_dir() / ".locks" / folder.name
    freed = 0
    for partial in (folder / "blobs").glob("*.incomplete"):
        try:
            with WeakFileLock(locks / f"{partial.name.split('.', 1)[0]}.lock", timeout=0.05):
                size = partial.stat().st_size
                partial.unlink()
        except (Timeout, OSError):
            continue
        freed += size
    return freed


def hub_model(repo_id: str) -> tuple[Path | None, ModelFiles]:
    """The cached snapshot of the hub's ``main`` for ``repo_id`` (never downloads) and what it holds."""
    from huggingface_hub import try_to_load_from_cache

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            folder = Path(found).parent
            return folder, folder_files(folder)
    return None, ModelFiles(weights=False, tokenizer=False, size_bytes=0)


def profile_files(profile: EngineProfile, models_dir: Path) -> ProfileFiles:
    """Whether a profile's weights and tokenizer are on this machine, and where."""
    if profile.local_folder:
        folder = models_dir / profile.local_folder
        found = folder if folder.is_dir() else None
        return ProfileFiles(profile.name, "local", found, folder_files(folder))
    location, files = hub_model(profile.model)
    return ProfileFiles(profile.name, "hub", location, files)


def _classes(names: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module, name in names:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _hub_error(exc: Exception, repo_id: str, revision: str) -> Exception:
    """The one-line error for a failed question to the hub (``exc`` itself when it is none we know)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return offline_error(repo_id, "HF_HUB_OFFLINE is set")
    if isinstance(exc, _classes(_CONNECT_ERRORS)):
        return offline_error(repo_id, f"no connection to {endpoint()} ({_first_line(exc)})")
    if isinstance(exc, GatedRepoError):
        return ConfigError(f"{repo_id} is gated: accept its terms on its page at {endpoint()} and set HF_TOKEN")
    if isinstance(exc, RevisionNotFoundError):
        return ConfigError(f"{repo_id} has no revision {revision!r} on {endpoint()}")
    if isinstance(exc, RepositoryNotFoundError):
        return ConfigError(f"no model {repo_id} on {endpoint()} (a private one needs HF_TOKEN)")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return DocanalystError(f"the hub at {endpoint()} answered {status} for {repo_id}: {_first_line(exc)}")
    return exc


def _download_error(exc: Exception, plan: PullPlan) -> Exception:
    """A download that stopped: one line saying that running the command again resumes it."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(exc, HfHubHTTPError):
        return _hub_error(exc, plan.repo_id, plan.revision)
    if isinstance(exc, (LocalEntryNotFoundError, OSError, *_classes(_TRANSPORT_ERRORS))):
        return DocanalystError(
            f"the download of {plan.repo_id} from {endpoint()} stopped ({type(exc).__name__}: {_first_line(exc)}): "
            f"run the same command again to fetch the rest (finished files stay in {repo_cache_folder(plan.repo_id)})"
        )
    return exc
