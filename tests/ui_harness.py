"""What the web app's AppTest files share: the scripted engine factory, a home and database of their own, and
ways to drive the page and read its tables. (Not a test module: ``test_ui*.py`` import it.)"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docanalyst.profiles import EngineProfile
from docanalyst.schemas import ContractResult

from conftest import ROOT
from fakes import ScriptedEngine

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(ROOT / "ui"))
from webapp import engine_holder

APP = str(ROOT / "ui" / "app.py")
GOVERNING = "This Agreement is governed by the laws of the State of New York."

GOOD = ContractResult.model_validate(
    {
        "parties": [
            {"value": "Northwind Analytics Ltd.", "role": "Supplier", "quote": "Northwind Analytics Ltd.", "page": 1},
            {"value": "Bluefin Logistics Inc.", "role": "Customer", "quote": "a Delaware corporation", "page": 1},
        ],
        "effective_date": {"value": "March 3, 2025", "quote": "is made on March 3, 2025", "page": 1},
        "term": {"value": "two years", "quote": "continues for two (2) years", "page": 1},
        "governing_law": {"value": "New York", "quote": GOVERNING, "page": 2},
        "liability_cap": {"value": "12 months of fees", "quote": "The cap is one million dollars.", "page": 2},
        "notice_period": {"value": "30 days", "quote": "within thirty (30) days of receipt", "page": 2},
    }
).model_dump_json()


class Factory:
    """A scripted engine per load; every request gets the next answer (the last one repeats)."""

    def __init__(self, answers: list[tuple[str, str]], home: Path) -> None:
        self.answers = answers
        self.home = home
        self.engine_class = ScriptedEngine
        self.engines: list[ScriptedEngine] = []

    def __call__(self, profile: EngineProfile, model_ref: str) -> ScriptedEngine:
        engine = self.engine_class(profile, self.answers * 20)
        self.engines.append(engine)
        return engine


def app_env_for(base_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    """The body of each test module's ``app_env`` fixture: a scripted engine, a home and a database of its own,
    and Streamlit's caches emptied before and after."""
    import streamlit as st

    # A home of its own (uploads are saved there) that sees the installed models.
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(base_settings.models_dir, target_is_directory=True)
    monkeypatch.setenv("DOCANALYST_HOME", str(home))
    monkeypatch.setenv("DOCANALYST_DB", f"sqlite:///{tmp_path / 'ui.db'}")
    monkeypatch.delenv("DOCANALYST_PROFILE", raising=False)
    factory = Factory([(GOOD, "stop")], home)
    monkeypatch.setattr(engine_holder, "ENGINE_FACTORY", factory)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield factory
    st.cache_resource.clear()
    st.cache_data.clear()


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.file_uploader(key="uploads").set_value([(name, data, "application/pdf") for name, data in files])
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def run_analysis(at: AppTest) -> AppTest:
    at.button(key="run").click()
    at.run(timeout=120)
    assert not at.exception, at.exception
    return at


# Read-only tables carry no key in AppTest: they are told apart by a column only they have.
SIGNATURE = {
    "budget_table": "verdict",
    "history_table": "quotes found",
    "compare_table": "same",
    "eval_table": "scored",
    "eval_fields": "rightly absent",
    "eval_documents": "of labels",
}


def frame(at: AppTest, key: str):  # type: ignore[no-untyped-def]
    for table in at.dataframe:
        if table.key == key or (key in SIGNATURE and SIGNATURE[key] in table.value.columns):
            return table.value
    raise AssertionError(f"no table {key}")


def has_frame(at: AppTest, key: str) -> bool:
    try:
        frame(at, key)
    except AssertionError:
        return False
    return True
