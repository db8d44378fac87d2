"""How long a template's answer can get on each profile: what `templates check` prints, and its refusal.

The numbers are the pipeline's own reserve (budget.reserve_for: the schema's worst case under the profile's
output bounds, in the profile model's tokens), so a template that passes here is never refused at run time
for its length, and one that fails gets the very message a run would give, with the file named in front.
Profiles on dummy weights exist to drive the engine code in tests, not to answer: they are not checked.
"""

from __future__ import annotations

from pathlib import Path

from docanalyst.errors import ConfigError, TemplateError
from docanalyst.profiles import PROFILES
from docanalyst.templates.registry import Template
from docanalyst.tokenization import TokenCounter, estimate_tokenizer, model_tokenizer

# The page number is part of the answer; a document of up to 99,999 pages bounds its digits.
PAGE_BOUND = 99_999


def _tokenizer(models_dir: Path, local: str | None, encoding: str) -> TokenCounter:
    folder = models_dir / local if local else None
    if folder is not None and (folder / "tokenizer.json").exists():
        return model_tokenizer(folder)
    return estimate_tokenizer(encoding)


def answer_tokens(template: Template, models_dir: Path | None = None) -> dict[str, int]:
    """The answer's worst case in tokens, by profile; raises the run-time refusal (a TemplateError naming the
    file) when it passes a profile's output limit."""
    from docanalyst.budget import reserve_for
    from docanalyst.prompting import prompt_template

    if models_dir is None:
        from docanalyst.config import Settings

        models_dir = Settings.from_env().models_dir
    prompt = prompt_template(template)
    tokens: dict[str, int] = {}
    for profile in PROFILES.values():
        if profile.dummy_weights:
            continue
        tokenizer = _tokenizer(models_dir, profile.local_folder, profile.estimate_encoding)
        try:
            tokens[profile.name] = reserve_for(prompt, profile, tokenizer, PAGE_BOUND)
        except ConfigError as exc:
            raise TemplateError(exc.message, path=None if template.builtin else template.source) from None
    return tokens
