"""Prompts from versioned Jinja files in ``prompts/``, laid out for prefix caching.

Layout: [system (shared)] [user: document block | task] [assistant]. Everything up to the end of the
document block is the *prefix*: byte-identical for every template and every question about the same
document. We tokenise prefix and suffix separately and concatenate the ids, so the prefix's token ids do
not depend on what follows it (BPE merges cannot cross the boundary) and the engine's prefix cache hits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from docanalyst.document import Document
from docanalyst.errors import ConfigError
from docanalyst.schemas import RESULT_MODELS
from docanalyst.tokenization import TokenCounter

TEMPLATES = tuple(RESULT_MODELS)  # the extraction templates and "ask" (a free-form question)
_SPLIT = "\x00DOCANALYST-TASK\x00"
_HEADER = re.compile(r"docanalyst prompt: (?P<name>[\w-]+), version (?P<version>\d+)(?:, output_tokens (?P<out>\d+))?")


def prompts_dir() -> Path:
    """Installed wheels carry prompts inside the package; a source checkout uses the top-level folder."""
    packaged = Path(__file__).parent / "_prompts"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    output_tokens: int
    source: str
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(prompts_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@lru_cache(maxsize=32)
def load_template(name: str) -> PromptTemplate:
    path = prompts_dir() / f"{name}.j2"
    if not path.exists():
        raise ConfigError(f"unknown template {name!r}; choose one of: {', '.join(TEMPLATES)}")
    source = path.read_text("utf-8")
    match = _HEADER.search(source.splitlines()[0] if source else "")
    if not match or match["name"] != name:
        raise ConfigError(f"template {name}.j2 lacks its version header", path=path)
    return PromptTemplate(
        name=name,
        version=int(match["version"]),
        output_tokens=int(match["out"] or 1024),
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest()[:16],
    )


def _render(name: str, **values: object) -> str:
    return _env().get_template(f"{name}.j2").render(**values).strip("\n")


@dataclass(frozen=True)
class BuiltPrompt:
    prefix: str
    suffix: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]

    @property
    def token_ids(self) -> list[int]:
        return [*self.prefix_ids, *self.suffix_ids]

    @property
    def tokens(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


_CLOSE = re.compile(r"</\s*document\s*>", re.IGNORECASE)


def document_block(document: Document, text: str | None = None) -> str:
    """The delimited document. A document cannot close the block early: a literal closing tag inside it is
    defused (``</document>`` becomes ``&lt;/document&gt;``), so whatever follows stays document text."""
    title = _CLOSE.sub("&lt;/document&gt;", (document.title or "").replace('"', "'").replace("\n", " ")[:200])
    body = _CLOSE.sub("&lt;/document&gt;", document.text if text is None else text)
    return _render("document", title=title, page_count=document.page_count, text=body)


def build_prompt(
    document: Document,
    template: PromptTemplate,
    tokenizer: TokenCounter,
    *,
    reask_error: str | None = None,
    document_text: str | None = None,
    question: str | None = None,
) -> BuiltPrompt:
    task = _render(template.name, question=question or "")
    if reask_error:
        task += "\n" + _render("reask", error=reask_error[:600])
    user = document_block(document, document_text) + "\n\n" + _SPLIT + task
    chat = tokenizer.render_chat([{"role": "system", "content": _render("system")}, {"role": "user", "content": user}])
    prefix, _, suffix = chat.partition(_SPLIT)
    return BuiltPrompt(prefix, suffix, tuple(tokenizer.encode(prefix)), tuple(tokenizer.encode(suffix)))


def overhead_tokens(
    document: Document, template: PromptTemplate, tokenizer: TokenCounter, question: str | None = None
) -> int:
    """Tokens of everything but the document text (system, markers, task): the prompt's own cost."""
    return build_prompt(document, template, tokenizer, document_text="", question=question).tokens
