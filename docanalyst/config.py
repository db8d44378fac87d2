"""Settings: one frozen object, environment variables read here and nowhere else.

Why one place: tests, the CLI and the UI must agree on where models and the database live, and a
stray ``os.environ`` read deep in the code makes that impossible to reason about.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
        )

    def with_db(self, db_url: str | None) -> Settings:
        if not db_url:
            return self
        from dataclasses import replace

        return replace(self, db_url=db_url)
