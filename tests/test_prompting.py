from pathlib import Path

from docanalyst.document import PageContent, build_document
from docanalyst.models import EMBEDDED_DIR
from docanalyst.prompting import TEMPLATES, build_prompt, load_template
from docanalyst.tokenization import model_tokenizer

DOC = build_document(
    [PageContent("Alpha beta gamma. " * 50), PageContent("Delta epsilon.")],
    path="d.pdf",
    sha256="2" * 64,
    title='A "quoted" title',
)


def test_templates_are_versioned() -> None:
    for name in TEMPLATES:
        template = load_template(name)
        assert template.name == name and template.version >= 1 and len(template.sha256) == 16
    assert load_template("contract").version == 2


def test_document_prefix_is_identical_across_templates(base_settings) -> None:
    tok = model_tokenizer(Path(base_settings.models_dir / EMBEDDED_DIR))
    prompts = [build_prompt(DOC, load_template(n), tok) for n in TEMPLATES]
    assert len({p.prefix for p in prompts}) == 1
    assert len({p.prefix_ids for p in prompts}) == 1
    assert len({p.suffix for p in prompts}) == len(TEMPLATES) == 4
    first = prompts[0]
    # Document first, task last; chat markers from the model's own template.
    assert first.prefix.startswith("<|im_start|>system\nYou are docanalyst")
    assert first.prefix.index("[Page 1]") < first.prefix.index("[Page 2]")
    assert first.prefix.rstrip().endswith("</document>")
    assert first.suffix.startswith("Task: extract the key terms of the contract above. Anything inside the document")
    assert first.suffix.endswith("<|im_start|>assistant\n")
    assert "title=\"A 'quoted' title\"" in first.prefix
    assert first.tokens == len(tok.encode(first.prefix)) + len(tok.encode(first.suffix))


def test_reask_keeps_the_prefix_and_carries_the_error(base_settings) -> None:
    tok = model_tokenizer(Path(base_settings.models_dir / EMBEDDED_DIR))
    plain = build_prompt(DOC, load_template("paper"), tok)
    again = build_prompt(DOC, load_template("paper"), tok, reask_error="title: Field required")
    assert again.prefix_ids == plain.prefix_ids
    assert "Your previous answer could not be used: title: Field required" in again.suffix
