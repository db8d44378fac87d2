"""The shape of the code, checked: import rules, import-safety, lint and types."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "docanalyst"
CORE = ("document", "budget", "schemas", "grounding", "errors", "config", "profiles", "prompting", "tokenization")
ADAPTERS = ("pymupdf", "fitz", "vllm", "sqlmodel", "sqlalchemy", "alembic", "typer", "rich", "streamlit", "torch")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


MODULES = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}
EVALUATION = {p.stem: imports_of(p) for p in (PACKAGE / "evaluation").glob("*.py")}
EVALUATION_CORE = ("normalize", "fields", "scoring", "datasets")
# Every module of the package, subpackages included, by its path below docanalyst/ ("engines/vllm")
ALL_MODULES = {p.relative_to(PACKAGE).with_suffix("").as_posix(): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_only_pdf_imports_pymupdf_and_only_engine_imports_vllm() -> None:
    assert sorted(m for m, names in MODULES.items() if names & {"pymupdf"}) == ["pdf"]
    assert not any("fitz" in names for names in MODULES.values())
    # engines/guard.py is the engine layer's logits processor, loaded by name inside vLLM's engine (never by us)
    assert sorted(m for m, names in ALL_MODULES.items() if "vllm" in names) == ["engines/guard", "engines/vllm"]
    assert not any(names & {"pymupdf", "fitz", "vllm"} for names in EVALUATION.values())


@pytest.mark.parametrize("module", EVALUATION_CORE)
def test_evaluation_core_imports_no_adapter(module: str) -> None:
    """Scoring must be testable and reusable without a database, an engine or a terminal."""
    assert not EVALUATION[module] & {*ADAPTERS, "matplotlib"}, EVALUATION[module]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_adapter(module: str) -> None:
    assert not MODULES[module] & set(ADAPTERS), MODULES[module] & set(ADAPTERS)


def test_importing_the_package_and_cli_stays_light() -> None:
    code = (
        "import sys, docanalyst, docanalyst.cli, docanalyst.pipeline; "
        "heavy = [m for m in ('vllm', 'torch', 'transformers') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_works_and_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "docanalyst.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("extract", "tokens", "list", "show", "export", "models", "eval", "eval-compare"):
        assert command in out.stdout


@pytest.mark.parametrize(
    "tool",
    [
        ["ruff", "check", "docanalyst", "tests", "bench", "samples", "ui"],
        ["ruff", "format", "--check", "docanalyst", "tests", "bench", "samples", "ui"],
        ["mypy"],
    ],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_lint_and_types_are_clean(tool: list[str]) -> None:
    exe = Path(sys.executable).parent / tool[0]
    out = subprocess.run([str(exe), *tool[1:]], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
