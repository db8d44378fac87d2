from docanalyst.document import PageContent, build_document, clean_page_text


def make(*texts: str):
    return build_document([PageContent(t) for t in texts], path="x.pdf", sha256="ab" * 32)


def test_offsets_point_into_the_canonical_text() -> None:
    doc = make("First page.\n\n\n\nMore  ", "Second\x00 page")
    assert doc.text == "[Page 1]\nFirst page.\n\nMore\n\n[Page 2]\nSecond page"
    for page in doc.pages:
        assert doc.text[page.start : page.end] == page.text
    assert doc.page_at(doc.text.index("Second")) == 2
    assert doc.page_at(doc.text.index("More")) == 1
    assert doc.id == "abababababab"


def test_pages_without_text_layer_are_reported() -> None:
    doc = build_document([PageContent("text"), PageContent("", has_text_layer=False)], path="s.pdf", sha256="0" * 64)
    assert doc.pages_without_text == [2]
    assert doc.warnings[-1].startswith("no text layer on 1 of 2 page(s) (2)")


def test_clean_page_text_keeps_lines() -> None:
    assert clean_page_text("a \r\nb\t\n\n\n\nc\x07 ") == "a \nb\t\n\nc"
