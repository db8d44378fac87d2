"""A prompt is never built from an estimate (issue 14): without the model's tokenizer on this machine (its folder,
the hub cache) or a server to ask (``--engine URL``), extract/ask stop with one line and exit 2 before any engine
starts; ``tokens`` still answers, with its count labelled as an estimate. No engine here: fast."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from docanalyst import planning
from docanalyst.errors import ConfigError
from docanalyst.profiles import get_profile

from conftest import SAMPLE_CONTRACT

DOCANALYST = str(Path(sys.executable).parent / "docanalyst")
QWEN = "Qwen/Qwen3-Next-80B-A3B-Instruct-FP8"
MESSAGE = (
    f"the tokenizer of {QWEN} is not on this machine: run `docanalyst models pull qwen3-next` (or "
    "`--tokenizer-only`), pass --model FOLDER, or use a server with --engine URL"
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script with an empty, offline hub cache and no server to find."""
    cache = tmp_path / "hf"
    env = {
        **os.environ,
        "HF_HOME": str(cache),
        "HF_HUB_CACHE": str(cache / "hub"),
        "HF_HUB_OFFLINE": "1",
        "DOCANALYST_DB": f"sqlite:///{tmp_path / 'guard.db'}",
        "DOCANALYST_ENGINE": "local",
    }
    return subprocess.run(
        [DOCANALYST, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env
    )


@pytest.mark.parametrize(
    "command",
    [["extract", str(SAMPLE_CONTRACT)], ["ask", str(SAMPLE_CONTRACT), "Who are the parties?"]],
    ids=["extract", "ask"],
)
def test_no_tokenizer_stops_with_exit_2_and_says_how_to_get_one(tmp_path: Path, command: list[str]) -> None:
    proc = run(tmp_path, *command, "--profile", "qwen3-next")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "starting" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {SAMPLE_CONTRACT}: {MESSAGE}"
    assert proc.stdout.strip() in ("", f"{SAMPLE_CONTRACT}\n  status: error")


def test_tokens_keeps_the_labelled_estimate(tmp_path: Path) -> None:
    proc = run(tmp_path, "tokens", str(SAMPLE_CONTRACT), "--profile", "qwen3-next")
    assert proc.returncode == 0, proc.stderr
    assert "tokens (estimate, cl100k_base) in the document" in proc.stdout


@pytest.fixture
def no_hub_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planning, "_hub_cached_folder", lambda model_id: None)


def test_the_tokenizer_is_the_models_the_servers_or_none(settings, no_hub_cache) -> None:
    qwen = get_profile("qwen3-next")
    folder = str(settings.models_dir / "smollm2-135m-instruct")
    assert planning.tokenizer_for(settings, folder, get_profile("embedded")).exact
    with pytest.raises(ConfigError) as caught:
        planning.tokenizer_for(settings, QWEN, qwen)
    assert str(caught.value) == MESSAGE and caught.value.exit_code == 2
    estimate = planning.tokenizer_for(settings, QWEN, qwen, estimate=True)
    assert not estimate.exact and estimate.name.startswith("cl100k")
    served = planning.tokenizer_for(replace(settings, engine="http://127.0.0.1:9/v1"), QWEN, qwen)
    assert type(served).__name__ == "ServerTokenizer" and served.exact
    assert (served.url, served.model) == ("http://127.0.0.1:9", QWEN)  # type: ignore[attr-defined]


def test_with_a_server_model_names_need_nothing_on_disk(settings, tmp_path) -> None:
    embedded = get_profile("embedded")
    bare = replace(settings, home=tmp_path)  # nothing installed
    served = replace(bare, engine="http://127.0.0.1:9")
    assert planning.resolve_model(served, embedded, None) == ("smollm2-135m-instruct", "smollm2-135m-instruct")
    assert planning.resolve_model(served, embedded, "team-model") == ("team-model", "team-model")
    with pytest.raises(ConfigError, match="not a model folder"):
        planning.resolve_model(bare, embedded, "team-model")
    with pytest.raises(ConfigError, match="is not installed in"):
        planning.resolve_model(bare, embedded, None)
    # a folder keeps meaning a folder, and a server knows it by the folder's name
    folder = settings.models_dir / "smollm2-135m-instruct"
    ref, name = planning.resolve_model(served, embedded, str(folder))
    assert (ref, name, planning.served_model_name(ref)) == (str(folder), folder.name, folder.name)
