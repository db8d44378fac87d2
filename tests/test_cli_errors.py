"""Every user error at the CLI edge ends in one plain line (or typer's usage block) and the right exit code.

The hostile corpus is made here, in tmp_path: file names with Rich markup, bytes that are not UTF-8, a newline
that could fake an ``error:`` line; databases that are read-only, not databases, or behind a file; options out
of range. Each case runs the installed console script (``main()``, where errors become lines), and no case
starts the engine: ``tokens``, ``list``, ``show``, ``export`` and errors raised before the engine starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest

from docanalyst.display import json_safe, one_line, show_path, storable
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store

DOCANALYST = str(Path(sys.executable).parent / "docanalyst")
TEXT = "SERVICES AGREEMENT. This Agreement is governed by the laws of the State of Delaware."
USAGE_CODE = 2


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCANALYST, *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, "DOCANALYST_CPU_KV_GIB": "2", **env},
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """stderr is exactly one line, ``error: ...``; returns it."""
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("DOCANALYST_DB", url)
    return url


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    """A valid two-page PDF under hostile names, and junk bytes under the same kinds of names."""
    folder = tmp_path / "cases"
    (folder / "br[").mkdir(parents=True)
    good = folder / "good.pdf"
    doc = pymupdf.open()
    for n in (1, 2):
        doc.new_page().insert_text((72, 72), f"{TEXT} Page {n}.")
    doc.save(good)
    doc.close()
    names = {
        "markup": "br[/x].pdf",  # a folder "br[" and a file "x].pdf": `[/x]` is a Rich closing tag
        "bold": "[bold]b.pdf",  # an opening tag: unescaped, Rich would print "b.pdf"
        "not_utf8": os.fsdecode(b"bad\xff.pdf"),
        "newline": "nl\nerror: fake.pdf",
        "escape": "esc\x1b[31mred.pdf",
    }
    made = {"good": good}
    for key, name in names.items():
        made[key] = folder / name
        shutil.copyfile(good, made[key])
        made[f"junk_{key}"] = folder / (name.removesuffix(".pdf") + "-junk.pdf")
        made[f"junk_{key}"].write_bytes(b"not a pdf at all")
    return made


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["export", "--format", "xml"], "'xml' is not one of"),
        (["show", "abc"], "valid integer"),
        (["show"], "Missing argument"),
        (["show", "99999999999999999999999"], "less than or equal to 9223372036854775807"),
        (["list", "-n", "0"], "--limit"),
        (["tokens", "--read-timeout", "inf", "{pdf}"], "--read-timeout"),
        (["tokens", "--read-timeout", "nan", "{pdf}"], "--read-timeout"),
        (["tokens", "--max-memory", "100000000000000", "{pdf}"], "--max-memory"),
        (["export", "-o", "{folder}"], "is a directory"),
        (["tokens", "--no-such-option", "{pdf}"], "No such option"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_usage_errors_are_typers_message_and_exit_2(
    args: list[str], says: str, corpus: dict[str, Path], db: str
) -> None:
    filled = [a.format(pdf=corpus["good"], folder=corpus["good"].parent) for a in args]
    proc = run(*filled)
    assert proc.returncode == USAGE_CODE, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("Usage: docanalyst"), proc.stderr
    assert lines[-1].startswith("Error: ") and says in lines[-1], proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            ["list"],
            {"DOCANALYST_CPU_KV_GIB": "abc"},
            "error: DOCANALYST_CPU_KV_GIB must be a whole number of GiB (got 'abc')",
        ),
        (
            ["list"],
            {"DOCANALYST_CPU_KV_GIB": "0"},
            "error: DOCANALYST_CPU_KV_GIB must be between 1 and 1,048,576 GiB (got 0)",
        ),
        (
            ["batch", "--glob", "/etc/*", "{folder}"],
            {},
            "error: --glob '/etc/*': give a pattern inside the folder, such as '*.pdf' or 'a*/*.pdf'",
        ),
        (["list", "--db", "nonsense"], {}, "error: not a database URL: 'nonsense'"),
        (
            ["tokens", "-t", "poem", "x.pdf"],
            {},
            "error: unknown template 'poem'; choose one of: contract, paper, generic, or give a .yaml/.json file",
        ),
    ],
    ids=["kv-gib-abc", "kv-gib-0", "glob-absolute", "db-url", "template-unknown"],
)
def test_configuration_errors_are_one_line_exit_2(
    args: list[str], env: dict[str, str], line: str, corpus: dict[str, Path], db: str
) -> None:
    proc = run(*[a.format(folder=corpus["good"].parent) for a in args], **env)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc).startswith(line)


@pytest.fixture
def read_only_file(tmp_path: Path) -> Iterator[Path]:
    """An empty file nobody may write, root included (root ignores the mode bits: the immutable flag)."""
    path = tmp_path / "locked.db"
    path.touch()
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield path
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("running as root on a file system without the immutable flag: no read-only file possible")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_database_names_the_problem(read_only_file: Path) -> None:
    proc = run("list", "--db", f"sqlite:///{read_only_file}")
    assert proc.returncode == 7
    assert (
        one_error_line(proc) == f"error: cannot open the database sqlite:///{read_only_file}: the database is read-only"
    )


def test_read_only_database_that_is_up_to_date_can_be_listed(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(f"sqlite:///{path}")  # create and migrate
    proc = run("list", "--json", "--db", f"sqlite:///file:{path}?mode=ro&uri=true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # no runs, one JSON line per run


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello\n" * 100)
    proc = run("list", "--db", f"sqlite:///{path}")
    assert proc.returncode == 7
    assert one_error_line(proc) == f"error: cannot open the database sqlite:///{path}: not a database file"


def test_database_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "passwd"
    blocker.write_text("a file, not a folder")
    proc = run("list", "--db", f"sqlite:///{blocker / 'x.db'}")
    assert proc.returncode == 7
    assert one_error_line(proc) == (
        f"error: cannot create the folder {blocker} for the database: a file of that name is in the way"
    )


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_in_memory_database_is_a_one_shot_store_and_leaves_no_file(url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = run("list", "--json", "--db", url, cwd=work)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("key", ["markup", "bold", "not_utf8", "newline", "escape"])
def test_hostile_names_of_a_good_pdf_are_read_and_shown_on_one_line(key: str, corpus: dict[str, Path], db: str) -> None:
    proc = run("tokens", str(corpus[key]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{show_path(corpus[key])}: 2 pages, ")


@pytest.mark.parametrize("key", ["not_utf8", "newline"])
def test_hostile_names_go_into_json_losslessly(key: str, corpus: dict[str, Path], db: str) -> None:
    proc = run("tokens", "--json", str(corpus[key]))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert os.fsencode(data["path"]) == os.fsencode(corpus[key])  # bytes that are not UTF-8 included
    assert data["pages"] == 2


@pytest.mark.parametrize("key", ["junk_markup", "junk_bold", "junk_not_utf8", "junk_newline", "junk_escape"])
def test_hostile_names_of_a_bad_file_give_one_escaped_error_line(key: str, corpus: dict[str, Path], db: str) -> None:
    proc = run("tokens", str(corpus[key]))
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line == f"error: {show_path(corpus[key])}: cannot open: not a PDF, or damaged beyond repair"


def test_batch_jsonl_of_unreadable_hostile_names_is_valid_json_and_lossless(
    corpus: dict[str, Path], db: str, tmp_path: Path
) -> None:
    """Every file fails while reading, so the engine never starts; each still gets its JSON line."""
    folder = tmp_path / "junk"
    folder.mkdir()
    for key in ("junk_markup", "junk_not_utf8", "junk_newline"):
        shutil.copyfile(corpus[key], folder / corpus[key].name)
    proc = run("batch", "--jsonl", "--workers", "1", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    paths = sorted(os.fsencode(r["document"]["path"]) for r in records)
    assert paths == sorted(os.fsencode(p) for p in folder.iterdir())
    assert {r["status"] for r in records} == {"error"}


def _store_run(url: str, path: str, value: str) -> int:
    store = Store(url)
    doc = DocumentRow(sha256="a" * 64, path=path, pages=1, chars=10)
    run_row = RunRow(
        document_sha256=doc.sha256, template="contract", template_version=1, template_sha256="t", schema_hash="s",
        profile="embedded", model="m", sampling_json="{}", status="ok", docanalyst_version="0",
        error=f"{path}: a note",
    )  # fmt: skip
    field = FieldRow(run_id=0, path="governing_law", value=value, quote=value, page=1, quote_status="exact")
    return store.save_run(doc, run_row, [field])


def test_stored_hostile_text_is_listed_shown_and_exported(db: str, tmp_path: Path) -> None:
    """A name that is not UTF-8 is stored (SQLite takes only UTF-8) and a model value with markup and an escape
    character is shown as written, on every output."""
    name = os.fsdecode(b"/x/br[/bad\xff [bold].pdf")
    value = "[/x] Delaware \x1b[31m"
    run_id = _store_run(db, name, value)
    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert "bad\\xff [bold].pdf" in listed.stdout
    shown = run("show", str(run_id))
    assert shown.returncode == 0, shown.stderr
    assert "/x/br[/bad\\xff [bold].pdf" in shown.stdout and "[/x] Delaware \\x1b[31m" in shown.stdout
    assert "\x1b" not in shown.stdout  # run on a pipe: no colour codes, and the model's escape is escaped
    exported = run("export", "--format", "json", str(run_id))
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)[0]["fields"][0]["value"] == value


def test_export_to_a_folder_that_does_not_exist(db: str, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.json"
    proc = run("export", "-o", str(target))
    assert proc.returncode == 1
    assert one_error_line(proc) == f"error: {target}: cannot write the export: No such file or directory"


@pytest.mark.parametrize("where", ["root", "command"])
def test_debug_at_the_root_or_after_the_command_shows_the_traceback(where: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    (tmp_path / "notes.db").write_text("hello\n" * 100)
    args = ["--debug", "list", "--db", url] if where == "root" else ["list", "--db", url, "--debug"]
    proc = run(*args)
    assert proc.returncode == 7
    assert "Traceback" in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"error: cannot open the database {url}: not a database file"


def test_display_helpers() -> None:
    assert show_path(os.fsdecode(b"bad\xff.pdf")) == "bad\\xff.pdf"
    assert show_path("a\nb\tc\x1b\u202e.pdf") == "a\\nb\\tc\\x1b\\u202e.pdf"
    assert show_path("Vertrag für Müller 2024.pdf") == "Vertrag für Müller 2024.pdf"
    assert one_line("first\nsecond") == "first\\nsecond"
    assert storable(os.fsdecode(b"bad\xff")) == "bad\\xff"
    text = json_safe(json.dumps({"p": os.fsdecode(b"bad\xff")}, ensure_ascii=False))
    assert text == '{"p": "bad\\udcff"}' and os.fsencode(json.loads(text)["p"]) == b"bad\xff"


def test_eval_dry_run_shows_a_document_name_with_markup_as_written(corpus: dict[str, Path], db: str) -> None:
    folder = corpus["good"].parent / "eval"
    folder.mkdir()
    shutil.copyfile(corpus["good"], folder / "[bold]n.pdf")
    (folder / "labels.csv").write_text("file,governing_law\n[bold]n.pdf,Delaware\n", encoding="utf-8")
    proc = run("eval", "--dataset", str(folder), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "│ [bold]n.pdf │" in proc.stdout


def test_quiet_sets_only_what_is_unset_and_debug_undoes_only_that(monkeypatch: pytest.MonkeyPatch) -> None:
    from docanalyst import quiet

    for key in quiet.QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "INFO")  # the user's own choice wins
    filters_before = list(warnings.filters)
    quiet.quiet()
    try:
        assert quiet.is_on()
        assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO"
        assert os.environ["TORCH_CPP_LOG_LEVEL"] == "ERROR"
        assert "ignore::UserWarning:multiprocessing.resource_tracker" in os.environ["PYTHONWARNINGS"]
    finally:
        quiet.loud()
    assert not quiet.is_on()
    assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO"
    assert not any(key in os.environ for key in quiet.QUIET_ENV if key != "VLLM_LOGGING_LEVEL")
    assert list(warnings.filters) == filters_before
