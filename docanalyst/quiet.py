"""Library chatter kept off the terminal unless ``--debug``.

vLLM, torch, Triton and multiprocessing print on stderr on every engine start: "Triton is installed, but doesn't
include CPU backend", FutureWarnings from torch, a C++ NUMA notice, safetensors loading bars, and at exit a
resource_tracker note about leaked shared memory. None of it is about the user's document, and a line of it can
look like a failure. Most of it comes from the engine's own processes, so the switches are environment variables,
set before vLLM is imported (it is imported lazily, when the engine starts): children inherit them. The
per-process parts (warnings filters, the logger that speaks before vLLM configures its logging) are set here too.
``--debug`` (read by the CLI before any command runs) undoes all of it; variables the user set are never touched.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, cast

# Values only: a variable already in the environment wins (a user who sets VLLM_LOGGING_LEVEL=INFO gets INFO).
QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # c10 warnings such as "NUMA binding: Using MEMBIND policy"
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # Python warnings in every child interpreter (the engine core, vLLM's model-registry probe, the resource
    # tracker, whose "leaked shared_memory objects" note at exit is a UserWarning).
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning,"
    "ignore::UserWarning:multiprocessing.resource_tracker",
}
# Loggers that speak before vLLM has configured its handlers, so Python's last-resort handler prints them bare.
_EARLY_LOGGERS = ("vllm.triton_utils.importing",)
_set_by_us: list[str] = []
_CATEGORIES: tuple[type[Warning], ...] = (FutureWarning, DeprecationWarning)
_our_filters: list[Any] = []


class _State:
    on = False


def is_on() -> bool:
    """Whether ``quiet`` is in force (the CLI without ``--debug``): the engine then turns its loading bars off."""
    return _State.on


def quiet() -> None:
    """Turn the chatter off for this process and the processes it starts (idempotent)."""
    _State.on = True
    for key, value in QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            _set_by_us.append(key)
    if not _our_filters:
        for category in _CATEGORIES:
            if ("ignore", None, category, None, 0) in warnings.filters:
                continue  # Python's own default (DeprecationWarning outside __main__): leave it where it is
            warnings.filterwarnings("ignore", category=category)
            _our_filters.append(warnings.filters[0])
    for name in _EARLY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def loud() -> None:
    """``--debug``: undo ``quiet`` (only what it set)."""
    _State.on = False
    while _set_by_us:
        os.environ.pop(_set_by_us.pop(), None)
    filters = cast("list[Any]", warnings.filters)
    for ours in _our_filters:
        if ours in filters:
            filters.remove(ours)
    _our_filters.clear()
    for name in _EARLY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
