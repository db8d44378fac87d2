"""The web app's choices and the engine behind it, through AppTest and directly: picking or uploading a template,
each value's confidence and the filter on it, and the one engine the server shares.

Scripted engines (fast): what the page does with answers and log-probabilities, not the model;
tests/test_ui_browser.py runs an uploaded template on the real embedded engine.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_ui import field_buttons, pick
from ui_harness import (
    AppTest,
    Factory,
    app_env_for,
    frame,
    has_frame,
    new_app,
    run_analysis,
    texts,
    upload,
)
from webapp import engine_holder, jobs
from webapp.evidence import label_of

from docanalyst.errors import EngineError
from docanalyst.profiles import EngineProfile, get_profile

from conftest import ROOT, SAMPLE_CONTRACT
from fakes import ScriptedEngine


@pytest.fixture
def app_env(base_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    yield from app_env_for(base_settings, tmp_path, monkeypatch)


# ---- templates ----------------------------------------------------------------------
NDA_TEMPLATE = ROOT / "samples" / "templates" / "nda.yaml"
NDA_PDF = ROOT / "samples" / "harborpeak-quillon-nda.pdf"
NDA_ANSWER = json.dumps(
    {
        "disclosing_party": {"value": "Harbor Peak Biotech, Inc.", "quote": "Harbor Peak Biotech, Inc.", "page": 1},
        "receiving_party": {"value": "Quillon Data Systems LLC", "quote": "Quillon Data Systems LLC", "page": 1},
        "effective_date": {"value": "May 12, 2025", "quote": "entered into as of May 12, 2025", "page": 1},
        "exclusions": [
            {"value": "public information", "quote": "publicly available through no fault of the Receiving", "page": 1}
        ],
    },
    separators=(",", ":"),
)


def upload_template(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="template_upload").set_value([(name, data, "application/yaml")])
    at.run()
    assert not at.exception, at.exception
    return at


def test_an_uploaded_template_file_is_checked_and_used(app_env: Factory) -> None:
    """A bad template file: its one-line error, and nothing runs. A good one (the NDA, which no built-in
    resembles): its fields are what the run extracts and shows."""
    app_env.answers = [(NDA_ANSWER, "stop")]  # the engine starts loading as soon as a file fits
    at = upload(new_app(), ("nda.pdf", NDA_PDF.read_bytes()))
    assert at.selectbox(key="template").options == ["contract (built-in)", "paper (built-in)", "generic (built-in)"]
    broken = NDA_TEMPLATE.read_text().replace("kind: duration", "kind: fortnights", 1)
    upload_template(at, "my nda.yaml", broken.encode())
    [error] = texts(at, "error")
    assert error.startswith(str(app_env.home / "uploads" / "templates")) and "my_nda.yaml" in error
    assert "my_nda.yaml: fields[3].kind: must be 'date', 'duration'," in error and "\n" not in error
    assert not has_frame(at, "budget_table") and not [b for b in at.button if b.key == "run"]
    assert any("fix or remove it to analyse" in w for w in texts(at, "warning"))

    upload_template(at, "nda.yaml", NDA_TEMPLATE.read_bytes())
    assert at.selectbox(key="template").disabled  # the uploaded file is what runs, not the list's choice
    assert texts(at, "error") == [] and texts(at, "success")[0] == "Using the uploaded template 'nda'"
    assert frame(at, "budget_table")["verdict"][0] == "✓ fits"
    run_analysis(at)
    nda_fields = ["disclosing_party", "receiving_party", "effective_date", "confidentiality_period", "exclusions",
                  "permitted_use", "return_of_materials", "governing_law"]  # fmt: skip
    labels = list(field_buttons(at, "res1").values())  # the workspace's field list, in the template's order
    assert [label.split("**")[1] for label in labels] == [label_of(f + "[0]" if f == "exclusions" else f)
                                                          for f in nda_fields]  # fmt: skip
    assert any(label.startswith("✓ **Receiving party** · Quillon Data Systems LLC") for label in labels)
    assert "`nda`" in next(m for m in texts(at, "markdown") if m.startswith("**nda.pdf**"))
    schema = app_env.engines[0].requests[0].json_schema  # the engine was asked for the NDA's fields
    assert schema is not None and list(schema["properties"]) == nda_fields


def test_templates_in_the_home_folder_are_offered_by_name(app_env: Factory) -> None:
    """A template saved as DOCANALYST_HOME/templates/nda.yaml is in the list; picked, the budget is measured with
    it (the NDA's prompt), and its label says where it comes from."""
    folder = app_env.home / "templates"
    folder.mkdir()
    (folder / "nda.yaml").write_bytes(NDA_TEMPLATE.read_bytes())
    (folder / "broken.yaml").write_text("name: broken\n")  # not a usable template: left out of the list
    at = upload(new_app(), ("nda.pdf", NDA_PDF.read_bytes()))
    picker = at.selectbox(key="template")
    assert picker.options == ["contract (built-in)", "paper (built-in)", "generic (built-in)", "nda (yours)"]
    contract_needs = frame(at, "budget_table")["needed / window"][0]
    picker.set_value("nda").run()
    assert not at.exception
    assert any(c.startswith("NDA: disclosing and receiving party") and "nda.yaml" in c for c in texts(at, "caption"))
    budget = frame(at, "budget_table")
    assert budget["verdict"][0] == "✓ fits" and budget["needed / window"][0] != contract_needs


class Scored(ScriptedEngine):
    """A scripted engine that also returns token log-probabilities, one token per character: every character of
    the JSON literals in ``doubtful`` at probability 0.2, the rest at 1."""

    doubtful: tuple[str, ...] = ('"New York"',)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for result in super().generate(requests):
            low = set()
            for literal in self.doubtful:
                start = result.text.find(literal)
                low |= set(range(start, start + len(literal))) if start >= 0 else set()
            logprobs = tuple(math.log(0.2) if i in low else 0.0 for i in range(len(result.text)))
            out.append(replace(result, token_texts=tuple(result.text), token_logprobs=logprobs))
        return out


def test_each_value_shows_its_confidence_and_the_filter_hides_doubtful_ones(
    app_env: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_env, "engine_class", Scored)
    at = upload(new_app(), ("a.pdf", SAMPLE_CONTRACT.read_bytes()))
    run_analysis(at)
    labels = field_buttons(at, "res1")
    n = len(labels)
    # the Low confidence filter keeps the one value below 0.50 (governing_law, scored 0.2)
    at.radio(key="res1_filter").set_value("Low confidence").run()
    [low] = field_buttons(at, "res1").values()
    assert "**Governing law**" in low
    at.button(key=next(iter(field_buttons(at, "res1")))).click().run()
    assert "Confidence: 0.20" in texts(at, "markdown")
    at.radio(key="res1_filter").set_value("All").run()
    assert len(field_buttons(at, "res1")) == n
    pick(at, "res1", "Effective date")
    assert "Confidence: 1.00" in texts(at, "markdown")


# ---- the shared engine ---------------------------------------------------------------------------
def test_engine_loads_in_the_background_once(base_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    built: list[ScriptedEngine] = []

    def slow(profile: EngineProfile, model_ref: str) -> ScriptedEngine:
        gate.wait(10)
        built.append(ScriptedEngine(profile, []))
        return built[-1]

    monkeypatch.setattr(engine_holder, "ENGINE_FACTORY", slow)
    holder = engine_holder.EngineHolder(base_settings)
    profile = get_profile("embedded")
    assert holder.state()[0] == "idle"
    started = time.monotonic()
    holder.ensure(profile, "m")
    assert time.monotonic() - started < 1.0 and holder.state()[:2] == ("loading", "embedded")  # did not block
    holder.ensure(profile, "m")  # asking again does not start a second load
    gate.set()
    engine = holder.wait(profile, "m", timeout=10)
    assert holder.state()[0] == "ready" and len(built) == 1
    assert holder.pool.loaded() == [("embedded", "m")]  # in the pool every Analyzer of the server is given
    assert holder.wait(profile, "m") is engine and len(built) == 1


class SlowAnalyzer:
    def __init__(self, order: list[str]) -> None:
        self.order = order

    def extract(self, paths, options, progress=None):  # type: ignore[no-untyped-def]
        self.order.append(f"start {paths[0]}")
        time.sleep(0.5)
        self.order.append(f"end {paths[0]}")
        return []


def test_runs_are_serialised(base_settings) -> None:
    holder = engine_holder.EngineHolder(base_settings)
    order: list[str] = []
    first = jobs.start_run(holder, SlowAnalyzer(order), None, ["a"])
    time.sleep(0.1)
    second = jobs.start_run(holder, SlowAnalyzer(order), None, ["b"])
    time.sleep(0.1)
    assert second.waiting_for_lock
    for job in (first, second):
        assert job.thread is not None
        job.thread.join(5)
    assert order == ["start a", "end a", "start b", "end b"]


def test_a_failed_engine_start_is_one_line_and_the_next_run_retries(base_settings) -> None:
    def broken(profile: EngineProfile, model_ref: str) -> ScriptedEngine:
        raise RuntimeError("no memory for the KV cache\nlong traceback text")

    holder = engine_holder.EngineHolder(base_settings)
    profile = get_profile("embedded")
    holder.pool.factory = broken  # the pool builds with the factory it was given
    holder.ensure(profile, "other")
    with pytest.raises(EngineError, match="could not start the engine for profile 'embedded': no memory"):
        holder.wait(profile, "other", timeout=10)
    assert holder.state()[0] == "error" and str(holder.error).count("\n") == 0
    holder.ensure(profile, "other")  # a page rerun does not retry a failed start…
    assert holder.state()[0] == "error"
    holder.pool.factory = lambda p, m: ScriptedEngine(p, [])
    assert holder.wait(profile, "other", timeout=10) is not None  # …the next run does
    assert holder.state()[0] == "ready"
