import pytest
from pydantic import ValidationError

from docanalyst.schemas import RESULT_MODELS, ContractResult, iter_cited, json_schema_for, schema_hash


def test_page_bound_and_required_fields_are_patched_per_document() -> None:
    schema = json_schema_for(ContractResult, 7)
    cited = schema["$defs"]["Cited"]
    page = cited["properties"]["page"]["anyOf"][0]
    assert page == {"minimum": 1, "maximum": 7, "type": "integer"} or (page["maximum"] == 7 and page["minimum"] == 1)
    assert cited["required"] == ["value", "quote", "page"]
    assert schema["required"][0] == "parties"
    assert schema["properties"]["parties"]["maxItems"] == 6
    assert cited["properties"]["quote"]["anyOf"][0]["maxLength"] == 300


def test_validation_rejects_pages_beyond_the_document() -> None:
    data = {"governing_law": {"value": "New York", "quote": "laws of New York", "page": 9}}
    with pytest.raises(ValidationError, match="beyond the document's last page \\(4\\)"):
        ContractResult.model_validate(data, context={"page_count": 4})
    assert ContractResult.model_validate(data, context={"page_count": 9}).governing_law.page == 9


def test_iter_cited_walks_lists_and_objects() -> None:
    result = ContractResult.model_validate(
        {"parties": [{"value": "Acme", "role": "supplier", "quote": "Acme", "page": 1}]}
    ).model_dump()
    paths = [p for p, _ in iter_cited(result)]
    assert paths[0] == "parties[0]" and "governing_law" in paths and len(paths) == 10


def test_schema_hashes_are_stable_and_distinct() -> None:
    hashes = {name: schema_hash(model) for name, model in RESULT_MODELS.items()}
    assert len(set(hashes.values())) == len(RESULT_MODELS) == 4
    assert schema_hash(ContractResult) == hashes["contract"]
