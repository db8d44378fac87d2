"""The answer fits its reserve by construction; a cut-off answer keeps its complete fields; loops are seen.

No engine here: the worst-case count, the bounds per profile, the salvage of partial JSON and the guard's loop
detection are checked exactly. tests/test_first_run.py drives the same code through the real engine.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from docanalyst.budget import answer_schema, reserve_for
from docanalyst.errors import ConfigError
from docanalyst.output_bounds import SEPARATORS, OutputBounds, apply_bounds, worst_case_tokens
from docanalyst.profiles import PROFILES, get_profile
from docanalyst.prompting import load_template
from docanalyst.salvage import read_fields, salvage
from docanalyst.schemas import RESULT_MODELS, ContractResult
from docanalyst.tokenization import estimate_tokenizer, model_tokenizer


@pytest.fixture(scope="module")
def smollm_tokenizer(base_settings):
    return model_tokenizer(base_settings.models_dir / "smollm2-135m-instruct")


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("template", list(RESULT_MODELS))
def test_worst_case_answer_fits_every_profile(template: str, profile: str, smollm_tokenizer) -> None:
    """Every built-in template on every profile: the longest answer the schema allows is within the profile's
    output limit, with the model's tokenizer and (GPU profiles, before their weights are at hand) the estimate."""
    chosen = get_profile(profile)
    tokenizers = [smollm_tokenizer] + ([estimate_tokenizer()] if chosen.device == "cuda" else [])
    for tokenizer in tokenizers:
        reserve = reserve_for(load_template(template), chosen, tokenizer, page_count=99_999)
        assert 0 < reserve <= chosen.max_output_tokens


def _random_instance(node: dict, root: dict, rng: random.Random) -> object:
    """An answer at the schema's bounds: every list full, every string at its maxLength of random words."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in node:
        node = next(o for o in node["anyOf"] if o.get("type") != "null")
    kind = node["type"]
    if kind == "object":
        return {k: _random_instance(v, root, rng) for k, v in node["properties"].items()}
    if kind == "array":
        return [_random_instance(node["items"], root, rng) for _ in range(node["maxItems"])]
    if kind == "integer":
        return node["maximum"]
    words = " ".join(
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz,.;0123456789", k=rng.randint(1, 9))) for _ in range(400)
    )
    return words[: node["maxLength"]]


@pytest.mark.parametrize("profile", ["embedded", "qwen3-next"])
@pytest.mark.parametrize("template", list(RESULT_MODELS))
def test_worst_case_is_not_below_a_real_answer_at_the_bounds(template: str, profile: str, smollm_tokenizer) -> None:
    schema = answer_schema(load_template(template), get_profile(profile), 123)
    rng = random.Random(7)
    for _ in range(3):
        text = json.dumps(_random_instance(schema, schema, rng), separators=SEPARATORS)
        assert smollm_tokenizer.count(text) + 1 <= worst_case_tokens(schema, smollm_tokenizer) + 1


def test_profile_bounds_narrow_strings_and_lists() -> None:
    schema = apply_bounds(answer_schema(load_template("contract"), get_profile("qwen3-next"), 5), OutputBounds(0.25, 2))
    cited = schema["$defs"]["Cited"]["properties"]
    assert cited["quote"]["anyOf"][0]["maxLength"] == 75 and cited["value"]["anyOf"][0]["maxLength"] == 50
    assert schema["properties"]["parties"]["maxItems"] == 2 and schema["properties"]["key_obligations"]["maxItems"] == 2
    # the full bounds on the GPU profile: the contract's worst case, as the issue counted it (about 13,500)
    full = answer_schema(load_template("contract"), get_profile("qwen3-next"), 5)
    assert full["properties"]["parties"]["maxItems"] == 6


def test_an_answer_that_cannot_fit_is_refused_with_the_numbers(smollm_tokenizer) -> None:
    small = replace(get_profile("embedded"), max_output_tokens=300)
    with pytest.raises(ConfigError) as caught:
        reserve_for(load_template("contract"), small, smollm_tokenizer, page_count=2)
    worst = worst_case_tokens(answer_schema(load_template("contract"), small, 2), smollm_tokenizer) + 1
    assert str(caught.value) == (
        f"the 'contract' answer can take up to {worst:,} tokens on profile 'embedded', more than its output limit "
        "of 300: lower the template's maxLength/maxItems bounds"
    )


def test_an_unbounded_schema_is_refused(smollm_tokenizer) -> None:
    schema = {"type": "object", "properties": {"notes": {"type": "array", "items": {"type": "string", "maxLength": 9}}}}
    with pytest.raises(ConfigError, match=r"^the list 'notes' has no maxItems: the answer's length cannot be bounded$"):
        worst_case_tokens(schema, smollm_tokenizer)
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    with pytest.raises(ConfigError, match=r"^the string 'title' has no maxLength"):
        worst_case_tokens(schema, smollm_tokenizer)


CUT = (
    '{"parties": [{"value": "Northwind", "quote": "Northwind Labs", "page": 1, "role": "supplier"}, '
    '{"value": "Bluefin", "quote": "Bluefin Ltd", "page": 1, "role": "customer"}], '
    '"agreement_date": {"value": "March 3, 2025", "quote": "dated March 3, 2025", "page": 1}, '
    '"effective_date": {"value": "April 1", "quote": "effective on Apr'
)


def test_salvage_keeps_complete_fields_and_names_the_rest() -> None:
    kept = salvage(CUT, ContractResult, page_count=2)
    assert kept is not None
    assert kept.kept == ("parties", "agreement_date")
    assert kept.missing == tuple(n for n in ContractResult.model_fields if n not in ("parties", "agreement_date"))
    assert kept.result["parties"][1]["value"] == "Bluefin" and kept.result["agreement_date"]["page"] == 1
    assert kept.result["effective_date"] == {"value": None, "quote": None, "page": None}


def test_salvage_keeps_the_complete_items_of_a_list_cut_short() -> None:
    fields, cut = read_fields(CUT.split(', {"value": "Bluefin"')[0] + ', {"value": "Blue')
    assert cut == {"parties"} and [p["value"] for p in fields["parties"]] == ["Northwind"]
    kept = salvage(CUT.split(', {"value": "Bluefin"')[0] + ', {"value": "Blue', ContractResult, page_count=2)
    assert kept is not None and kept.kept == ("parties",) and "parties (cut off)" in kept.missing


def test_salvage_drops_an_invalid_field_and_finds_nothing_in_nothing() -> None:
    bad_page = CUT.replace('"page": 1}, "effective', '"page": 9}, "effective')
    kept = salvage(bad_page, ContractResult, page_count=2)
    assert kept is not None and kept.kept == ("parties",) and "agreement_date" in kept.missing
    for text in ("", "{", '{"parties": [{"value": "Nor', "not json at all"):
        assert salvage(text, ContractResult, page_count=2) is None


def test_loop_period_finds_only_real_loops() -> None:
    from docanalyst.engines.guard import loop_period

    assert loop_period([5] * 11) is None and loop_period([5] * 12) == 1
    unit = [10, 11, 12, 13, 14]
    assert loop_period([1, 2, *unit, *unit, *unit]) == 5
    assert loop_period([1, 2, *unit, *unit, 99, *unit]) is None
    assert loop_period(list(range(200))) is None
