"""Shared fixtures. Engines are session-scoped: each real engine starts once per test session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from docanalyst.config import Settings
from docanalyst.engines import Engine, EnginePool
from docanalyst.models import EMBEDDED_DIR, TINY_QWEN_DIR, is_complete

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
SAMPLES = ROOT / "samples"
SAMPLE_CONTRACT = SAMPLES / "northwind-bluefin-services-agreement.pdf"
CUAD = CORPUS / "contracts" / "cuad" / "pdf"
UNSEEN_CONTRACT = CUAD / "EcoScienceSolutionsInc_20171117_8-K_EX-10.1_10956472_EX-10.1_Endorsement Agreement.pdf"
LONG_CONTRACT = CUAD / "WaterNowInc_20191120_10-Q_EX-10.12_11900227_EX-10.12_Distributor Agreement.pdf"


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file from its numbered objects (object 1 is the catalog), with a correct xref table: for fixtures
    that need bytes PyMuPDF would not write (shared content streams, raw fonts)."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The installed models (from the README's set-up), never a hub; fail loudly if they are missing."""
    settings = Settings.from_env()
    for name in (EMBEDDED_DIR, TINY_QWEN_DIR):
        if not is_complete(settings.models_dir / name):
            pytest.fail(f"model {name} is not installed in {settings.models_dir}: run `bash scripts/setup.sh` first")
    return settings


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path) -> Settings:
    """Installed models, but a fresh database per test."""
    return replace(base_settings, db_url=f"sqlite:///{tmp_path / 'test.db'}")


@pytest.fixture
def db_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same per-test database for code that reads the environment (the CLI)."""
    monkeypatch.setenv("DOCANALYST_DB", settings.db_url)
    return settings.db_url


@pytest.fixture(scope="session")
def engine_pool(base_settings: Settings) -> Iterator[EnginePool]:
    """The session's real engines, each started once on first use and closed at the end. Every test that needs
    one passes this pool to its Analyzer (``Analyzer(settings, pool=engine_pool)``), which never closes it."""
    with EnginePool(replace(base_settings, cpu_kv_cache_gib=3), keep=2) as pool:  # embedded and tiny Qwen3-Next
        yield pool


@pytest.fixture(scope="session")
def embedded_engine(engine_pool: EnginePool, base_settings: Settings) -> Engine:
    from docanalyst.profiles import get_profile

    return engine_pool.get(get_profile("embedded"), str(base_settings.models_dir / EMBEDDED_DIR))


@pytest.fixture(scope="session")
def tiny_engine(engine_pool: EnginePool, base_settings: Settings) -> Engine:
    from docanalyst.profiles import get_profile

    return engine_pool.get(get_profile("qwen3-next-tiny"), str(base_settings.models_dir / TINY_QWEN_DIR))


def count_calls(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[int]:
    """Count ``generate`` calls on a real engine for one test (``len`` of the list returned)."""
    calls: list[int] = []
    real = engine.generate

    def counted(requests):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return real(requests)

    monkeypatch.setattr(engine, "generate", counted)
    return calls


@pytest.fixture
def cli_pool(engine_pool: EnginePool, monkeypatch: pytest.MonkeyPatch) -> EnginePool:
    """Commands run in-process (CliRunner) on the session's engines, through the CLI's one engine seam."""
    from docanalyst.cli import common

    monkeypatch.setattr(common, "engine_pool", lambda: engine_pool)
    return engine_pool


# The session keeps two engines alive at once (embedded and tiny Qwen3-Next), which vLLM can only do with each
# engine core in its own process; the CLI's own default on a CPU is in-process (profiles._CPU_ENV), and the tests
# that start the CLI as a fresh process drop this variable to run that default.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "1")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session (tests/postgres.py): the URL of its ``postgres`` database."""
    import postgres

    with postgres.server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes empty databases of each kind the store supports: SQLite files, and fresh PostgreSQL databases on the
    session's real server."""
    made = iter(range(1 << 20))
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'store{next(made)}.db'}"
    import postgres

    server = request.getfixturevalue("postgres_server")
    return lambda: postgres.fresh_database(server)


@pytest.fixture
def db_url(new_database: Callable[[], str]) -> str:
    """An empty database: a SQLite file, then (the same test again) a PostgreSQL database."""
    return new_database()


def free_port() -> int:
    """A free TCP port on loopback (for a server a test starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
