"""The shape of the code, checked: layers, import rules, import-safety, size limits, lint and types."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "docanalyst"
UI = ROOT / "ui"
CORE = ("document", "budget", "schemas", "grounding", "support", "errors", "config", "profiles", "prompting",
        "tokenization", "planning", "statuses", "confidence", "options", "runs", "generation")  # fmt: skip
ADAPTERS = ("pymupdf", "fitz", "vllm", "sqlmodel", "sqlalchemy", "alembic", "typer", "rich", "streamlit", "torch",
            "ray", "psycopg")  # fmt: skip

# The layers, bottom up: a module may import its own layer and the ones below, never one above (lazy imports
# inside functions included). A module is named by its path below docanalyst/ ("engines/pool"); a package's
# name covers every module in it unless a module is named on its own.
# fmt: off
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"", "errors", "display", "quiet", "statuses", "config", "lifecycle", "models", "document",
                    "evidence", "salvage", "confidence", "tokenization", "output_bounds", "profiles"}),
    ("core", {"templates", "schemas", "prompting", "budget", "grounding", "support", "options", "runs", "planning",
              "evaluation", "evaluation/normalize", "evaluation/fields", "evaluation/datasets", "evaluation/scoring"}),
    ("adapters", {"engines", "database", "store", "exporting", "pdf", "page_workers", "reader_answers", "isolation",
                  "reader_process", "hub", "serving", "revisions"}),
    ("pipeline", {"generation", "pipeline", "batch", "field_groups", "outcome", "ray_batch", "reviewing"}),
    ("services", {"evaluation/runner", "evaluation/report", "evaluation/views"}),
    ("faces", {"cli"}),
]
# fmt: on
# What the web app (ui/, outside the package) must never import: PDF parsing and engine backends stay behind
# the isolated reader and the engine pool.
UI_FORBIDDEN = {"docanalyst.pdf", "docanalyst.engines.vllm", "docanalyst.engines.guard", "vllm", "torch", "fitz"}
UI_PYMUPDF = {"ui/webapp/render_child.py"}  # page images are drawn in a child process bounded like the reader
MAX_FILE_LINES = 400  # a file must stay under this
MAX_FUNCTION_LINES = 60  # and every function or method under this
# Files still over a limit, with the helper who owns them (issue 13): each entry is a debt, not a licence.
SIZE_ALLOWED: dict[str, str] = {}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def package_imports(path: Path) -> set[str]:
    """The docanalyst modules a file imports, by path below docanalyst/ ("" is the package itself)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "docanalyst":  # from docanalyst import generation, planning
                modules += [f"docanalyst.{a.name}" for a in node.names if _is_module(PACKAGE / a.name)]
        for module in modules:
            if module == "docanalyst" or module.startswith("docanalyst."):
                names.add(module.removeprefix("docanalyst").lstrip(".").replace(".", "/"))
    return names


def _is_module(path: Path) -> bool:
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_name(path: Path) -> str:
    name = path.relative_to(PACKAGE).with_suffix("").as_posix()
    return "" if name == "__init__" else name.removesuffix("/__init__")


def layer_of(name: str) -> int:
    """The layer of a module: its own entry, else its nearest package's."""
    parts = name.split("/")
    for end in range(len(parts), 0, -1):
        prefix = "/".join(parts[:end])
        for rank, (_, members) in enumerate(LAYERS):
            if prefix in members:
                return rank
    if name == "":
        return 0
    raise AssertionError(f"docanalyst/{name}.py is in no layer: add it to LAYERS in tests/test_architecture.py")


SOURCES = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.relative_to(PACKAGE).parts]
MODULES = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}
EVALUATION = {p.stem: imports_of(p) for p in (PACKAGE / "evaluation").glob("*.py")}
EVALUATION_CORE = ("normalize", "fields", "scoring", "datasets")
# Every module of the package, subpackages included, by its path below docanalyst/ ("engines/vllm")
ALL_MODULES = {p.relative_to(PACKAGE).with_suffix("").as_posix(): imports_of(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    name = module_name(path)
    rank = layer_of(name)
    above = {m for m in package_imports(path) if layer_of(m) > rank}
    assert not above, f"docanalyst/{name} ({LAYERS[rank][0]}) imports " + ", ".join(
        f"{m} ({LAYERS[layer_of(m)][0]})" for m in sorted(above)
    )


def test_the_ui_reads_pdfs_and_runs_engines_only_through_the_package() -> None:
    for path in UI.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        found = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        assert not found & UI_FORBIDDEN, (rel, found & UI_FORBIDDEN)
        if rel not in UI_PYMUPDF:
            assert "pymupdf" not in found, rel


def _sizes() -> list[tuple[str, int, str | None]]:
    """(file, lines, None) for every file and (file, lines, function) for every function, in docanalyst/ and ui/."""
    out: list[tuple[str, int, str | None]] = []
    for path in [*PACKAGE.rglob("*.py"), *UI.rglob("*.py")]:
        rel, text = path.relative_to(ROOT).as_posix(), path.read_text("utf-8")
        out.append((rel, len(text.splitlines()), None))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                out.append((rel, (node.end_lineno or node.lineno) - start + 1, node.name))
    return out


def test_files_and_functions_stay_small() -> None:
    """Files under 400 lines, functions under 60: past that, a module does two jobs or a function hides one."""
    over = {
        (rel, f"{rel}{'' if name is None else ':' + name} has {lines} lines")
        for rel, lines, name in _sizes()
        if lines >= (MAX_FILE_LINES if name is None else MAX_FUNCTION_LINES)
    }
    assert sorted(message for rel, message in over if rel not in SIZE_ALLOWED) == []
    assert sorted(set(SIZE_ALLOWED) - {rel for rel, _ in over}) == []  # a paid debt leaves the list


def test_only_pdf_imports_pymupdf_and_only_engine_imports_vllm() -> None:
    assert sorted(m for m, names in MODULES.items() if names & {"pymupdf"}) == ["pdf"]
    assert not any("fitz" in names for names in MODULES.values())
    # engines/guard.py is the engine layer's logits processor, loaded by name inside vLLM's engine (never by us)
    assert sorted(m for m, names in ALL_MODULES.items() if "vllm" in names) == ["engines/guard", "engines/vllm"]
    assert not any(names & {"pymupdf", "fitz", "vllm"} for names in EVALUATION.values())
    assert sorted(m for m, names in ALL_MODULES.items() if "ray" in names) == ["ray_batch"]  # Ray is an extra


@pytest.mark.parametrize("module", EVALUATION_CORE)
def test_evaluation_core_imports_no_adapter(module: str) -> None:
    """Scoring must be testable and reusable without a database, an engine or a terminal."""
    assert not EVALUATION[module] & {*ADAPTERS, "matplotlib"}, EVALUATION[module]


@pytest.mark.parametrize("module", CORE)
def test_core_modules_import_no_adapter(module: str) -> None:
    assert not MODULES[module] & set(ADAPTERS), MODULES[module] & set(ADAPTERS)


def test_importing_the_package_and_cli_stays_light() -> None:
    code = (
        "import sys, docanalyst, docanalyst.cli, docanalyst.pipeline, docanalyst.engines; "
        "heavy = [m for m in ('vllm', 'torch', 'transformers', 'ray') if m in sys.modules]; print(heavy)"
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
