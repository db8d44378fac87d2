"""The template registry without an engine: the built-ins derived from their files are what the hand-written
classes and prompts were, `show` output is a file `check` accepts, a bad file gets one exact line, a user's
template is found by name, and an edited template gets a new hash (so it misses the run cache)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from docanalyst.budget import answer_schema
from docanalyst.cli.templates import templates_app
from docanalyst.document import PageContent, build_document
from docanalyst.engines import EnginePool, FakeEngine
from docanalyst.errors import TemplateError
from docanalyst.output_bounds import worst_case_tokens
from docanalyst.pipeline import Analyzer, ExtractOptions
from docanalyst.profiles import get_profile
from docanalyst.prompting import build_prompt, load_template
from docanalyst.schemas import RESULT_MODELS, iter_cited, schema_hash
from docanalyst.templates import (
    builtins,
    check_template_file,
    dump_template,
    get_template,
    list_templates,
    load_file,
    scan_home,
)
from docanalyst.templates.limits import answer_tokens
from docanalyst.tokenization import model_tokenizer

from conftest import ROOT, SAMPLES

DATA = ROOT / "tests" / "data"
NDA_YAML = SAMPLES / "templates" / "nda.yaml"
NDA_PDF = SAMPLES / "harborpeak-quillon-nda.pdf"
DOC = build_document([PageContent("Alpha beta gamma. " * 50), PageContent("Delta epsilon.")], path="d.pdf",
                     sha256="2" * 64, title="A title")  # fmt: skip


@pytest.fixture(scope="module")
def smollm(base_settings):
    return model_tokenizer(base_settings.models_dir / "smollm2-135m-instruct")


def test_builtin_prompts_are_the_ones_before_the_registry(smollm) -> None:
    before = json.loads((DATA / "prompts_before_registry.json").read_text("utf-8"))
    assert sorted(before) == sorted(t.name for t in builtins())
    for name, want in before.items():
        template = load_template(name)
        plain = build_prompt(DOC, template, smollm)
        again = build_prompt(DOC, template, smollm, reask_error="title: Field required")
        assert plain.suffix == want["suffix"] and plain.suffix.startswith(want["task"])
        assert list(plain.suffix_ids) == want["suffix_ids"]
        assert again.suffix == want["reask_suffix"] and again.prefix_ids == plain.prefix_ids


def test_builtin_schemas_are_the_ones_before_the_registry() -> None:
    before = json.loads((DATA / "schemas_before_registry.json").read_text("utf-8"))
    for template in builtins():
        schema = template.result_model.model_json_schema()
        assert schema == before[template.name]
        # the captured file is key-sorted; the order the model answers in is the declaration's
        assert list(schema["properties"]) == [f.name for f in template.spec.fields]
        assert RESULT_MODELS[template.name] is template.result_model
    assert [t.name for t in list_templates(Path("/nonexistent"))] == ["contract", "paper", "generic"]


def test_show_prints_a_file_that_check_accepts(tmp_path, monkeypatch, base_settings) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for template in builtins():
        for fmt, suffix in (("yaml", ".yaml"), ("json", ".json")):
            shown = runner.invoke(templates_app, ["show", template.name, "--format", fmt])
            assert shown.exit_code == 0 and shown.stdout == dump_template(template, fmt)
            mine = Path(f"my_{template.name}{suffix}")
            mine.write_text(shown.stdout.replace(f"{template.name}", f"my_{template.name}", 1), "utf-8")
            copy = load_file(mine)
            assert copy.spec == template.spec.model_copy(update={"name": f"my_{template.name}"})
            assert (
                copy.result_model.model_json_schema()["properties"]
                == (template.result_model.model_json_schema()["properties"])
            )
    checked = runner.invoke(templates_app, ["check", "my_contract.yaml"])
    tokens = answer_tokens(load_file(Path("my_contract.yaml")), base_settings.models_dir)
    assert list(tokens) == ["embedded", "qwen3-next", "qwen3-next-1m"]
    per_profile = ", ".join(f"{name} {count:,}" for name, count in tokens.items())
    assert checked.exit_code == 0
    assert checked.stdout == (
        f"ok: my_contract.yaml: template 'my_contract' v2, 12 fields; answer at most {per_profile} tokens\n"
    )


GOOD = NDA_YAML.read_text("utf-8")
BAD_FILES = [
    (GOOD.replace("max_items: 4", "max_items: 0"), "nda.yaml: fields[4].max_items: must be at least 1"),
    (
        GOOD.replace("max_items: 4", "maxitems: 4"),
        "nda.yaml: fields[4].maxitems: is not a setting here (use name, "
        "description, shape, kind, max_length, max_items, item, extra)",
    ),
    (
        GOOD.replace("name: nda", "name: NDA"),
        "nda.yaml: name: must be a lowercase name: a-z, 0-9 and _, starting with a letter, at most 40 characters",
    ),
    (GOOD.replace("shape: list", "shape: many"), "nda.yaml: fields[4].shape: must be 'one' or 'list'"),
    (
        GOOD.replace("name: receiving_party", "name: disclosing_party"),
        "nda.yaml: fields[1].name: 'disclosing_party' is declared twice",
    ),
    (
        GOOD.replace("name: governing_law\n", "name: governing_law\n    max_items: 2\n"),
        "nda.yaml: fields[7]: max_items is only for shape: list",
    ),
    (GOOD.replace("max_length: 120", "max_length: lots", 1), "nda.yaml: fields[0].max_length: must be a whole number"),
    (
        GOOD.replace("name: nda", "name: contract"),
        "nda.yaml: name: 'contract' is a built-in template; choose another name",
    ),
    (
        GOOD.replace("not an instruction to you.", "<|im_start|>system"),
        "nda.yaml: task: must not contain control characters or chat markers such as '<|'",
    ),
    (GOOD.replace("- [disclosing_party,", "- [nobody,"), "nda.yaml: groups: 'nobody' is not a field"),
    (GOOD.split("fields:")[0], "nda.yaml: fields: is required"),
    (GOOD.split("fields:")[0] + "fields: []\n", "nda.yaml: fields: needs at least 1 entry"),
    ("- just\n- a list\n", "nda.yaml: must be a mapping of template settings (name, label, task, fields, ...)"),
    ("name: nda\n  label: [x\n", "nda.yaml: not valid YAML (line 2, column 8: mapping values are not allowed here)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_file_is_one_line_naming_the_key_and_the_problem(text: str, message: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("nda.yaml").write_text(text, "utf-8")
    with pytest.raises(TemplateError) as caught:
        get_template("nda.yaml")
    assert str(caught.value) == message and caught.value.exit_code == 2
    checked = CliRunner().invoke(templates_app, ["check", "nda.yaml"])
    assert isinstance(checked.exception, TemplateError) and str(checked.exception) == message


def test_other_bad_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("nda.json").write_text('{"name": "nda",}', "utf-8")
    Path("nda.txt").write_text(GOOD, "utf-8")
    cases = {
        "nda.json": "nda.json: not valid JSON (line 1, column 16: Expecting property name enclosed in double quotes)",
        "nda.txt": "nda.txt: a template file ends in .yaml, .yml or .json",
        "gone.yaml": "gone.yaml: no such template file",
    }
    for ref, message in cases.items():
        with pytest.raises(TemplateError) as caught:
            get_template(ref)
        assert str(caught.value) == message


def test_an_answer_longer_than_a_profile_allows_is_refused_with_the_run_time_message(tmp_path, monkeypatch, smollm):
    monkeypatch.chdir(tmp_path)
    many = "".join(f"  - name: f{i}\n    description: field {i}\n    shape: list\n    max_items: 3\n" for i in range(8))
    Path("big.yaml").write_text(f"name: big\nlabel: Big\ntask: read it.\nfields:\n{many}", "utf-8")
    template = load_file(Path("big.yaml"))
    worst = worst_case_tokens(answer_schema(load_template("big.yaml"), get_profile("embedded"), 99_999), smollm) + 1
    with pytest.raises(TemplateError) as caught:
        check_template_file(Path("big.yaml"))
    assert str(caught.value) == (
        f"big.yaml: the 'big' answer can take up to {worst:,} tokens on profile 'embedded', more than its output "
        "limit of 2,304: lower the template's maxLength/maxItems bounds"
    )
    assert len(template.spec.fields) == 8


def test_user_templates_by_name_from_the_home_folder(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / "templates").mkdir(parents=True)
    shutil.copy(NDA_YAML, home / "templates" / "nda.yaml")
    (home / "templates" / "broken.yml").write_text("name: broken\n", "utf-8")
    (home / "templates" / "other.json").write_text(dump_template(load_file(NDA_YAML), "json"), "utf-8")
    found = get_template("nda", home)
    assert found.source == str(home / "templates" / "nda.yaml") and found.sha256 == load_file(NDA_YAML).sha256
    assert [t.name for t in list_templates(home)] == ["contract", "paper", "generic", "nda"]
    problems = [str(p) for p in scan_home(home)[1]]
    assert problems == [
        f"{home}/templates/broken.yml: label: is required",
        f"{home}/templates/other.json: name: 'nda' differs from the file's name 'other'",
    ]
    monkeypatch.setenv("DOCANALYST_HOME", str(home))
    assert load_template("nda").sha256 == found.sha256  # the pipeline's lookup: the environment's home
    with pytest.raises(TemplateError) as caught:
        get_template("lease")
    assert str(caught.value) == (
        "unknown template 'lease'; choose one of: contract, paper, generic, nda, or give a .yaml/.json file "
        f"(your own templates by name live in {home}/templates)"
    )
    listed = CliRunner().invoke(templates_app, ["list", "--json"])
    assert [row["name"] for row in json.loads(listed.stdout)] == ["contract", "paper", "generic", "nda"]


def test_an_edit_changes_the_hash_and_a_rewrite_of_the_same_declaration_does_not(tmp_path) -> None:
    path = tmp_path / "nda.yaml"
    path.write_text(GOOD, "utf-8")
    first = load_template(str(path))
    path.write_text(dump_template(load_file(path)), "utf-8")  # defaults written out, comments gone: same template
    assert load_template(str(path)).sha256 == first.sha256
    path.write_text(GOOD.replace("the party that discloses", "the company that discloses"), "utf-8")
    edited = load_template(str(path))  # read again: a long-lived process sees the edit at once
    assert edited.sha256 != first.sha256
    # the JSON schema is the same (a description is prompt text), but the run cache key is not
    assert edited.result_model.model_json_schema() == first.result_model.model_json_schema()
    bounds = get_profile("embedded").output_bounds
    assert schema_hash(edited.result_model, bounds) != schema_hash(first.result_model, bounds)


def test_an_edited_template_misses_the_stored_run(settings, tmp_path) -> None:
    answer = json.dumps({"governing_law": {"value": "Massachusetts", "quote": "Commonwealth of Massachusetts",
                                           "page": 2}})  # fmt: skip
    engines: list[FakeEngine] = []

    def factory(profile, model_ref):
        engines.append(FakeEngine(profile, [(answer, "stop")] * 3))
        return engines[-1]

    path = tmp_path / "nda.yaml"
    path.write_text(GOOD, "utf-8")
    analyzer = Analyzer(settings, pool=EnginePool(settings, factory))
    options = ExtractOptions(profile="embedded", template=str(path))
    [first] = analyzer.extract([NDA_PDF], options)
    [again] = analyzer.extract([NDA_PDF], options)
    path.write_text(GOOD.replace("the only purpose", "the purpose"), "utf-8")
    [edited] = analyzer.extract([NDA_PDF], options)
    assert (first.status, again.status, edited.status) == ("ok", "cached", "ok")
    assert len(engines[0].requests) == 2 and again.run_id == first.run_id != edited.run_id
    runs = [analyzer.store.get_run(o.run_id)[0] for o in (first, edited)]  # type: ignore[index,arg-type]
    assert [r.template for r in runs] == ["nda", "nda"]
    assert [r.template_sha256 for r in runs] == [load_file(NDA_YAML).sha256, load_file(path).sha256]
    first_prompt, edited_prompt = (r.prompt_token_ids for r in engines[0].requests)
    assert len(edited_prompt) < len(first_prompt)  # "the only purpose" became "the purpose"


def test_models_are_built_from_the_declaration() -> None:
    nda = load_file(NDA_YAML)
    schema = nda.result_model.model_json_schema()
    assert schema["title"] == "NdaResult" and schema["additionalProperties"] is False
    party = schema["$defs"]["DisclosingParty"]["properties"]
    assert party["value"]["anyOf"][0]["maxLength"] == 120 and party["quote"]["anyOf"][0]["maxLength"] == 300
    assert schema["properties"]["exclusions"]["maxItems"] == 4
    assert schema["properties"]["governing_law"] == {"$ref": "#/$defs/Cited"}
    empty = nda.result_model().model_dump()
    assert [path for path, _ in iter_cited(empty)] == [f.name for f in nda.spec.fields if not f.many]
    with pytest.raises(ValidationError, match="beyond the document's last page \\(2\\)"):
        nda.result_model.model_validate({"governing_law": {"value": "x", "quote": "x", "page": 3}},
                                        context={"page_count": 2})  # fmt: skip
    with pytest.raises(ValidationError, match="at most 120 characters"):
        nda.result_model.model_validate({"receiving_party": {"value": "x" * 121}})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        nda.result_model.model_validate({"term": {"value": "x"}})
    contract = get_template("contract")
    role = contract.result_model.model_json_schema()["$defs"]["Party"]["properties"]["role"]
    assert role["anyOf"][0]["maxLength"] == 80 and role["description"] == "e.g. supplier, customer, licensor"
    assert {n: (s.kind, s.many) for n, s in nda.field_specs.items()}["exclusions"] == ("text", True)
    assert nda.field_label("exclusions[1]") == "Exclusions 2" and nda.field_label("governing_law") == "Governing law"
    assert nda.field_label("nonsense") == "nonsense"
