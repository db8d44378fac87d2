"""Settings: one frozen object, environment variables read here and nowhere else.

Why one place: tests, the CLI and the UI must agree on where models and the database live, and a
stray ``os.environ`` read deep in the code makes that impossible to reason about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docanalyst.errors import ConfigError

APP_NAME = "docanalyst"


def _default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def _sibling_corpus() -> Path | None:
    """The shared corpus beside a source checkout (``../shared/corpus``), where the project keeps it."""
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    return candidate if candidate.is_dir() else None


def _whole_number(env: Mapping[str, str], name: str, default: int, *, unit: str, most: int = 1 << 20) -> int:
    """A positive whole number from the environment, or a ConfigError naming the variable (not a ValueError
    from deep inside the engine start)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of {unit} (got {raw!r})") from None
    if not 1 <= value <= most:
        raise ConfigError(f"{name} must be between 1 and {most:,} {unit} (got {value:,})")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything that depends on the environment."""

    home: Path
    db_url: str
    profile: str | None = None
    cpu_kv_cache_gib: int = 4
    # Labelled documents for `docanalyst eval --dataset cuad|papers` (contracts/ and papers/ below it).
    corpus_dir: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # Which engine answers (issue 14): None = in-process, unless a `docanalyst serve` is found on its default
    # local address (cli.common); "local" = in-process, never look for one; else the base URL of an
    # OpenAI-compatible vLLM server (`docanalyst serve`, a team's `vllm serve`). DOCANALYST_ENGINE or --engine.
    engine: str | None = None
    # Bearer key for that server (DOCANALYST_API_KEY or --api-key); `serve` requires one off loopback.
    api_key: str | None = None
    # Engine settings over the profile's (DOCANALYST_ENGINE_ARGS as JSON or k=v,k=v; --engine-arg k=v;
    # --tensor-parallel-size N): e.g. load_format=dummy for measurements. Recorded with every run.
    engine_args: Mapping[str, object] = field(default_factory=dict)

    @property
    def engine_url(self) -> str | None:
        """The server's URL when one was named (not "local", not unset)."""
        return self.engine if self.engine and self.engine != "local" else None

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env["DOCANALYST_HOME"]).expanduser() if env.get("DOCANALYST_HOME") else _default_home()
        db_url = env.get("DOCANALYST_DB") or f"sqlite:///{home / 'docanalyst.db'}"
        return cls(
            home=home,
            db_url=db_url,
            profile=env.get("DOCANALYST_PROFILE") or None,
            cpu_kv_cache_gib=_whole_number(env, "DOCANALYST_CPU_KV_GIB", 4, unit="GiB"),
            corpus_dir=Path(env["DOCANALYST_CORPUS"]).expanduser()
            if env.get("DOCANALYST_CORPUS")
            else _sibling_corpus(),
            engine=env.get("DOCANALYST_ENGINE", "").strip() or None,
            api_key=env.get("DOCANALYST_API_KEY") or None,
            engine_args=parse_engine_args(env.get("DOCANALYST_ENGINE_ARGS", ""), source="DOCANALYST_ENGINE_ARGS"),
        )

    def with_db(self, db_url: str | None) -> Settings:
        if not db_url:
            return self
        from dataclasses import replace

        return replace(self, db_url=db_url)


def parse_engine_args(raw: str | Sequence[str], *, source: str) -> dict[str, object]:
    """Engine settings from a JSON object, ``k=v,k=v`` text, or a list of ``k=v`` (``--engine-arg``). Each value
    is read as JSON when it is JSON (``2``, ``true``, ``{"a": 1}``) and kept as text otherwise (``dummy``); a key
    is a ``vllm.LLM`` argument name (``load_format``, ``tensor_parallel_size``; dashes become underscores)."""
    import json

    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                loaded = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{source} is not a JSON object: {exc}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{source} must be a JSON object or k=v,k=v")
            return {str(k).replace("-", "_"): v for k, v in loaded.items()}
        items: Sequence[str] = [part for part in text.split(",") if part.strip()]
    else:
        items = raw
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: expected key=value, got {item!r}")
        try:
            parsed[key.strip().replace("-", "_")] = json.loads(value)
        except ValueError:
            parsed[key.strip().replace("-", "_")] = value
    return parsed
