"""The cli package in-process, without a real engine: the one global ``--debug``, ``eval`` as a sub-app with its
old names, ``--template`` as a name or a file, ``--min-confidence`` and the confidence column, and the engine
seam (``common.engine_pool``) driven by a scripted engine. ``main()`` is called in this process where the edge
itself is under test (one error line, exit code); everything else goes through CliRunner.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docanalyst import cli, lifecycle, quiet
from docanalyst.cli import common, edge
from docanalyst.config import Settings
from docanalyst.engines import EnginePool, FakeEngine, GenerationRequest, GenerationResult
from docanalyst.store import DocumentRow, FieldRow, RunRow, Store

from conftest import SAMPLE_CONTRACT

REPO = Path(__file__).resolve().parent.parent
NDA = REPO / "samples" / "templates" / "nda.yaml"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def flat(text: str) -> str:
    """Text from a rich box (CliRunner's usage error, a help panel) as one line of words."""
    return " ".join(text.replace("│", " ").split())


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The console script in this process: ``main()`` with these arguments, its exit code, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["docanalyst", *args])
    monkeypatch.setattr(edge.State, "debug", False)  # what a --debug sets is undone after the test
    # main() ends its whole process tree when the command is done (lifecycle.stopping): in this process that tree
    # is the test session's, with its engines (tests/test_signals.py proves the stop in real subprocesses)
    monkeypatch.setattr(lifecycle, "stopping", contextlib.nullcontext)
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    finally:
        quiet.loud()  # main() silences the libraries for the process; give the test session its warnings back
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


# ---- the global --debug ---------------------------------------------------------------------------------------


def test_debug_after_the_command_is_moved_to_the_root() -> None:
    assert edge.hoist_debug(["extract", "x.pdf", "--debug", "--json"]) == ["--debug", "extract", "x.pdf", "--json"]
    assert edge.hoist_debug(["list"]) == ["list"]
    # after "--" it is an argument (a file called --debug), not the option
    assert edge.hoist_debug(["extract", "--", "--debug"]) == ["extract", "--", "--debug"]


def test_debug_is_one_root_option_that_is_read(db_env: str) -> None:
    edge.State.debug = False
    try:
        assert invoke("--debug", "list", "--json")[0] == 0
        assert edge.State.debug and not quiet.is_on()
    finally:
        edge.State.debug = False
    code, _, stderr = invoke("list", "--debug")  # no command declares its own --debug any more
    assert code == 2 and "No such option: --debug" in stderr


def test_debug_after_the_command_in_main_prints_the_traceback(monkeypatch, capsys, tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("hello\n" * 100)
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    code, _, stderr = run_main(monkeypatch, capsys, "list", "--db", url, "--debug")
    assert code == 7
    assert "Traceback (most recent call last)" in stderr
    assert stderr.splitlines()[-1] == f"error: cannot open the database {url}: not a database file"


# ---- eval as a sub-app, the old names as aliases ---------------------------------------------------------------


def test_eval_sub_app_and_its_old_names(db_env: str) -> None:
    code, stdout, _ = invoke("eval", "--help")
    assert code == 0 and all(name in stdout for name in ("run", "list", "show", "compare"))
    assert invoke("eval", "list", "--json") == invoke("eval-list", "--json") == (0, "", "")
    for args in (["eval", "show", "9"], ["eval-show", "9"], ["eval", "compare", "9"], ["eval-compare", "9"]):
        result = CliRunner().invoke(cli.app, args)
        assert str(result.exception) == "no evaluation 9 (see `docanalyst eval list`)", args


def test_eval_with_options_runs_eval_run(db_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "eval"
    folder.mkdir()
    shutil.copyfile(SAMPLE_CONTRACT, folder / "a.pdf")
    (folder / "labels.csv").write_text("file,governing_law\na.pdf,New York\n", encoding="utf-8")
    old = invoke("eval", "--dataset", str(folder), "--dry-run", "--json")
    new = invoke("eval", "run", "--dataset", str(folder), "--dry-run", "--json")
    assert old == new and old[0] == 0
    [row] = [json.loads(line) for line in old[1].splitlines()]
    assert (row["document"], row["profile"], row["verdict"]) == ("a.pdf", "embedded", "fits")


# ---- --template: a name, a file, or one clear line -------------------------------------------------------------


def test_a_template_file_that_is_not_there_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nda.yaml"
    code, stdout, stderr = run_main(monkeypatch, capsys, "tokens", "--template", str(missing), str(SAMPLE_CONTRACT))
    assert (code, stdout, stderr) == (2, "", f"error: {missing}: no such template file\n")


def test_a_bad_template_file_names_the_file_and_the_problem(monkeypatch, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(NDA.read_text(encoding="utf-8").replace("task: extract", "tusk: extract"), encoding="utf-8")
    code, stdout, stderr = run_main(monkeypatch, capsys, "tokens", "-t", str(bad), str(SAMPLE_CONTRACT))
    assert (code, stdout) == (2, "")
    assert stderr == f"error: {bad}: task: is required\n"


def test_an_unknown_template_name_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCANALYST_HOME", str(tmp_path))
    code, _, stderr = run_main(monkeypatch, capsys, "ask", str(SAMPLE_CONTRACT), "-t", "poem")
    assert code == 2 and len(stderr.splitlines()) == 1
    assert stderr.startswith("error: unknown template 'poem'; choose one of: contract, paper, generic")


def test_a_template_file_is_measured_and_a_home_template_is_listed_in_help(
    db_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, stdout, _ = invoke("tokens", "--json", "--template", str(NDA), str(SAMPLE_CONTRACT))
    assert code == 0 and json.loads(stdout)["verdict"] == "fits"
    home = tmp_path / "home"
    (home / "templates").mkdir(parents=True)
    shutil.copyfile(NDA, home / "templates" / "nda.yaml")
    monkeypatch.setenv("DOCANALYST_HOME", str(home))
    code, stdout, _ = invoke("extract", "--help")
    assert code == 0 and "Installed: contract, paper, generic, nda." in flat(stdout)


# ---- --min-confidence and the confidence column ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
@pytest.mark.parametrize("command", ["show", "export", "extract"])
def test_min_confidence_outside_0_to_1_is_a_usage_error(command: str, value: str, db_env: str) -> None:
    target = str(SAMPLE_CONTRACT) if command == "extract" else "1"
    code, stdout, stderr = invoke(command, target, "--min-confidence", value)
    assert code == 2 and stdout == ""
    assert f"Invalid value for '--min-confidence': {value} is not a confidence between 0 and 1" in flat(stderr)


def _store_run(url: str) -> int:
    doc = DocumentRow(sha256="b" * 64, path="/x/c.pdf", pages=1, chars=10)
    run = RunRow(
        document_sha256=doc.sha256, template="contract", template_version=2, template_sha256="t", schema_hash="s",
        profile="embedded", model="m", sampling_json="{}", status="ok", docanalyst_version="0",
    )  # fmt: skip
    fields = [
        FieldRow(
            run_id=0,
            path="governing_law",
            value="Delaware",
            quote="Delaware",
            page=1,
            quote_status="exact",
            quote_found=True,
            confidence=0.934,
        ),
        FieldRow(
            run_id=0, path="term", value="two years", quote="2 years", page=1, quote_status="not_found", confidence=0.2
        ),
        FieldRow(run_id=0, path="renewal", value="none", quote=None, page=None, quote_status="no_quote"),
    ]
    return Store(url).save_run(doc, run, fields)


def _rows(table: str) -> dict[str, list[str]]:
    """A rich table printed on a pipe, as {field: its other cells}."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    return {row[0]: row[1:] for row in rows}


def test_show_has_a_confidence_column_and_hides_below_the_minimum(db_env: str) -> None:
    run_id = str(_store_run(db_env))
    code, stdout, _ = invoke("show", run_id)
    assert code == 0
    rows = _rows(stdout)
    assert [rows[f][-1] for f in ("governing_law", "term", "renewal")] == ["0.93", "0.20", ""]
    code, stdout, _ = invoke("show", run_id, "--min-confidence", "0.5")
    assert code == 0 and set(_rows(stdout)) == {"governing_law", "renewal"}  # no score: nothing says it is doubtful
    assert "  1 value(s) with a confidence below 0.5 hidden" in stdout.splitlines()


def test_export_leaves_out_the_values_below_the_minimum(db_env: str) -> None:
    run_id = str(_store_run(db_env))
    code, stdout, _ = invoke("export", run_id, "--min-confidence", "0.5")
    [record] = json.loads(stdout)
    assert code == 0 and record["hidden"] == ["term"] and record["min_confidence"] == 0.5
    assert [(f["path"], f["confidence"]) for f in record["fields"]] == [("governing_law", 0.934), ("renewal", None)]


ANSWER = json.dumps(
    {
        "governing_law": {"value": "New York", "quote": "the laws of the State of New York", "page": 2},
        "parties": [
            {"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.", "page": 1}
        ],
    },
    separators=(",", ":"),
)


class ScoredEngine(FakeEngine):
    """The scripted answer, one token per character: every token is sure (p = 1) but the first letter of
    "Northwind", which has p = 0.25, so the party's confidence is 0.25 and the law's 1.0 (the min rule)."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        doubtful = ANSWER.index("Northwind")
        logprobs = tuple(math.log(0.25) if i == doubtful else 0.0 for i in range(len(ANSWER)))
        return [
            GenerationResult(ANSWER, "stop", 10, 0, len(ANSWER), 0.01, 0.1, tuple(ANSWER), logprobs) for _ in requests
        ]


def test_extract_through_the_engine_seam_shows_and_filters_confidences(
    db_env: str, base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = EnginePool(base_settings, lambda profile, model_ref: ScoredEngine(profile))
    monkeypatch.setattr(common, "engine_pool", lambda: pool)
    code, stdout, stderr = invoke("extract", str(SAMPLE_CONTRACT), "--profile", "embedded", "--min-confidence", "0.5")
    assert code == 0, stderr
    rows = _rows(stdout)
    assert rows.pop("governing_law") == ["New York", "2", "the laws of the State of New York", "✓ exact", "1.00"]
    assert "parties[0]" not in rows  # 0.25: hidden
    # the fields the answer left out are null, without a confidence (no token wrote them), and are kept
    assert len(rows) == 8 and all(cells == ["null", "", "", "–", ""] for cells in rows.values())
    assert "  1 value(s) with a confidence below 0.5 hidden" in stdout.splitlines()
    code, stdout, _ = invoke(
        "extract", str(SAMPLE_CONTRACT), "--profile", "embedded", "--json", "--min-confidence", "0.3"
    )
    record = json.loads(stdout)
    assert (code, record["status"], record["hidden"], record["min_confidence"]) == (0, "cached", ["parties[0]"], 0.3)
    assert pool.loaded() == [("embedded", str(base_settings.models_dir / "smollm2-135m-instruct"))]
    pool.close()
