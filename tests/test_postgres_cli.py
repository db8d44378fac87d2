"""The commands on a real PostgreSQL server (``--db postgresql+psycopg://…``), with the session's embedded engine:
an extraction is stored there, a batch finds it there, and it is listed, shown and exported."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from docanalyst import cli

from conftest import SAMPLES

NDA = SAMPLES / "harborpeak-quillon-nda.pdf"


@pytest.mark.engine
def test_every_command_on_postgresql(cli_pool, postgres_server: str, tmp_path) -> None:
    import postgres

    db = postgres.fresh_database(postgres_server)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli.app, [*args, "--db", db])
        return result.exit_code, result.stdout

    extract = ["extract", str(NDA), "--template", "generic", "--max-output-tokens", "120", "--json"]
    code, out = run(*extract)
    first = json.loads(out)
    assert code in (0, 8) and first["status"] in ("ok", "partial") and first["run_id"] == 1, out  # 8: cut, kept
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / NDA.name).write_bytes(NDA.read_bytes())
    batch = ["batch", str(inbox), "--template", "generic", "--max-output-tokens", "120", "--jsonl"]
    again = json.loads(run(*batch)[1])
    assert (again["status"], again["run_id"]) == ("cached", 1)  # found in PostgreSQL (batch reuses partial runs)
    listed = [json.loads(line) for line in run("list", "--json")[1].splitlines()]
    assert [(r["run_id"], r["status"]) for r in listed] == [(1, first["status"])]
    code, shown = run("show", "1", "--json")
    assert code == 0 and json.loads(shown)["result"] == first["result"]
    rows = list(csv.DictReader(io.StringIO(run("export", "--format", "csv")[1])))
    assert rows and {r["run_id"] for r in rows} == {"1"}
