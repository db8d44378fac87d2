"""Prompts from versioned Jinja files in ``prompts/``, laid out for prefix caching.

Layout: [system (shared)] [user: document block | task] [assistant]. Everything up to the end of the
document block is the *prefix*: byte-identical for every template and every question about the same
document. We tokenise prefix and suffix separately and concatenate the ids, so the prefix's token ids do
not depend on what follows it (BPE merges cannot cross the boundary) and the engine's prefix cache hits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from docanalyst.document import Document
from docanalyst.errors import ConfigError
from docanalyst.evidence import EVIDENCE_MODES, QUOTES, REFS, number_units
from docanalyst.schemas import AnswerRefsResult, AnswerResult
from docanalyst.templates import BUILTIN_NAMES, Template, get_template
from docanalyst.templates.models import FieldSpec, field_specs, result_model
from docanalyst.templates.spec import TemplateSpec
from docanalyst.tokenization import TokenCounter

ASK = "ask"
TEMPLATES = (*BUILTIN_NAMES, ASK)  # the built-in extraction templates and "ask" (a free-form question)
_SPLIT = "\x00DOCANALYST-TASK\x00"
# Text from outside (the document, its title, a question, the model's own earlier answer) travels between these
# two marks through the templates, so that it is tokenised as text only: a "<|im_start|>" inside a PDF stays
# characters and never becomes the chat's control token (TokenCounter.encode_text).
_DATA = re.compile("\x0e(.*?)\x0f", re.DOTALL)
# The answer's reserve is no longer in the header: it is the schema's worst case (output_bounds.py).
_HEADER = re.compile(r"docanalyst prompt: (?P<name>[\w-]+), version (?P<version>\d+)")


def prompts_dir() -> Path:
    """Installed wheels carry prompts inside the package; a source checkout uses the top-level folder."""
    packaged = Path(__file__).parent / "_prompts"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "prompts"


@dataclass(frozen=True)
class PromptTemplate:
    """What the pipeline needs of a template: its name, version and hash (stored with each run and part of the
    run cache key), the result model it validates against, and the declaration its task is rendered from
    (``None`` for the question prompt, ``ask.j2``). ``evidence`` is how values cite the document: ``quotes``
    copied from it, or ``refs`` to its numbered sentences (evidence.py; ``with_evidence``)."""

    name: str
    version: int
    source: str
    sha256: str
    result_model: type[BaseModel] = AnswerResult
    spec: TemplateSpec | None = None
    evidence: str = QUOTES

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def field_specs(self) -> dict[str, FieldSpec]:
        """How `docanalyst eval` scores each field (none for a question)."""
        return field_specs(self.spec) if self.spec is not None else {}


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(prompts_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@lru_cache(maxsize=8)
def _prompt_file(name: str) -> tuple[str, int]:
    """A prompt file's text and the version in its header."""
    path = prompts_dir() / f"{name}.j2"
    source = path.read_text("utf-8")
    match = _HEADER.search(source.splitlines()[0] if source else "")
    if not match or match["name"] != name:
        raise ConfigError(f"template {name}.j2 lacks its version header", path=path)
    return source, int(match["version"])


def prompt_template(template: Template) -> PromptTemplate:
    """An extraction template as the pipeline uses it; its hash is the declaration's (Template.sha256)."""
    return PromptTemplate(
        name=template.name,
        version=template.version,
        source=_prompt_file("extract")[0],
        sha256=template.sha256,
        result_model=template.result_model,
        spec=template.spec,
    )


def load_template(ref: str) -> PromptTemplate:
    """``ask``, a built-in name, a name from DOCANALYST_HOME/templates, or a template file's path (a file is
    read again on every call, so an edit is seen at once; see templates/registry.py)."""
    if ref == ASK:
        source, version = _prompt_file(ASK)
        return PromptTemplate(ASK, version, source, hashlib.sha256(source.encode()).hexdigest()[:16])
    return prompt_template(get_template(ref))


_REFS_MODELS: dict[tuple[str, str], type[BaseModel]] = {}


def with_evidence(template: PromptTemplate, mode: str) -> PromptTemplate:
    """The template asking for evidence of this kind. ``refs`` is another question (another prompt, another
    result model): its hash changes, and so does its schema hash, so a run of one mode never answers the other
    (RunKey). ``quotes`` returns the template as it is (the hashes runs were stored under stay the same)."""
    if mode not in EVIDENCE_MODES:
        raise ConfigError(f"unknown evidence mode {mode!r}; choose one of: {', '.join(EVIDENCE_MODES)}")
    if mode == template.evidence:
        return template
    if mode == QUOTES:
        raise ConfigError("a refs template cannot be turned back into a quotes one: load it again")
    key = (template.name, template.sha256)
    if key not in _REFS_MODELS:
        spec, sha = template.spec, getattr(template.result_model, "__template_sha256__", None)
        _REFS_MODELS[key] = AnswerRefsResult if spec is None else result_model(spec, sha, evidence=REFS)
    sha256 = hashlib.sha256(f"{template.sha256}|evidence:{mode}".encode()).hexdigest()[:16]
    return replace(template, evidence=mode, sha256=sha256, result_model=_REFS_MODELS[key])


def _render(name: str, **values: object) -> str:
    return _env().get_template(f"{name}.j2").render(**values).strip("\n")


def task_text(template: PromptTemplate, question: str | None = None) -> str:
    """The task part of the prompt: the question prompt, or the declaration's task and field list."""
    refs = template.evidence == REFS
    if template.spec is None:
        return _render(template.name, question=data(question or ""), refs=refs)
    return _render("extract", task=template.spec.task, fields=template.spec.fields, refs=refs)


def data(text: str) -> str:
    """Mark ``text`` as data (see _DATA); the marks themselves cannot be smuggled in."""
    return "\x0e" + text.replace("\x0e", "").replace("\x0f", "") + "\x0f"


def _plain(text: str) -> str:
    return text.replace("\x0e", "").replace("\x0f", "")


def encode_marked(tokenizer: TokenCounter, text: str) -> tuple[int, ...]:
    """Token ids of a rendered prompt: our own parts with the chat's control tokens, marked data as text only."""
    ids: list[int] = []
    at = 0
    for match in _DATA.finditer(text):
        ids += tokenizer.encode(text[at : match.start()])
        ids += tokenizer.encode_text(match[1])
        at = match.end()
    ids += tokenizer.encode(text[at:])
    return tuple(ids)


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


def document_block(document: Document, text: str | None = None, evidence: str = QUOTES) -> str:
    """The delimited document. A document cannot close the block early: a literal closing tag inside it is
    defused (``</document>`` becomes ``&lt;/document&gt;``), so whatever follows stays document text. With
    ``refs`` evidence every sentence carries its ``[S12]`` marker (evidence.py)."""
    title = _CLOSE.sub("&lt;/document&gt;", (document.title or "").replace('"', "'").replace("\n", " ")[:200])
    if text is None:
        text = number_units(document).text if evidence == REFS else document.text
    body = _CLOSE.sub("&lt;/document&gt;", text)
    return _render("document", title=data(title) if title else "", page_count=document.page_count, text=data(body))


def build_prompt(
    document: Document,
    template: PromptTemplate,
    tokenizer: TokenCounter,
    *,
    reask_error: str | None = None,
    document_text: str | None = None,
    question: str | None = None,
) -> BuiltPrompt:
    task = task_text(template, question)
    if reask_error:
        task += "\n" + _render("reask", error=data(reask_error[:600]))
    user = document_block(document, document_text, template.evidence) + "\n\n" + _SPLIT + task
    system = _render("system", refs=template.evidence == REFS)
    chat = tokenizer.render_chat([{"role": "system", "content": system}, {"role": "user", "content": user}])
    prefix, _, suffix = chat.partition(_SPLIT)
    return BuiltPrompt(
        _plain(prefix), _plain(suffix), encode_marked(tokenizer, prefix), encode_marked(tokenizer, suffix)
    )


def overhead_tokens(
    document: Document, template: PromptTemplate, tokenizer: TokenCounter, question: str | None = None
) -> int:
    """Tokens of everything but the document text (system, markers, task): the prompt's own cost."""
    return build_prompt(document, template, tokenizer, document_text="", question=question).tokens
