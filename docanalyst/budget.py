"""Token budget: does the whole document fit the profile's window, with room for the answer?

No truncation, ever: a document that does not fit is an error with the numbers, or (when allowed) a move
to the long-context profile. Counting is exact when the model's tokenizer is at hand, else a labelled
estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from docanalyst.document import Document
from docanalyst.errors import BudgetError, ConfigError
from docanalyst.output_bounds import apply_bounds, worst_case_tokens
from docanalyst.profiles import EngineProfile
from docanalyst.prompting import BuiltPrompt, PromptTemplate, build_prompt, overhead_tokens
from docanalyst.schemas import json_schema_for
from docanalyst.tokenization import TokenCounter


@dataclass(frozen=True)
class BudgetReport:
    profile: str
    window: int
    prompt_tokens: int  # the whole prompt as sent: system + document + task
    document_tokens: int  # prompt_tokens minus the prompt's own overhead
    overhead_tokens: int
    reserve_tokens: int  # kept free for the answer (max_tokens)
    exact: bool
    counter: str

    @property
    def needed(self) -> int:
        return self.prompt_tokens + self.reserve_tokens

    @property
    def available_for_document(self) -> int:
        return self.window - self.reserve_tokens - self.overhead_tokens

    @property
    def fits(self) -> bool:
        return self.needed <= self.window

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "needed": self.needed,
            "fits": self.fits,
            "available_for_document": self.available_for_document,
        }


def answer_schema(template: PromptTemplate, profile: EngineProfile, page_count: int) -> dict[str, Any]:
    """The schema sent to structured decoding: the template's, pages bounded, narrowed to the profile's bounds."""
    return apply_bounds(json_schema_for(template.result_model, page_count), profile.output_bounds)


def reserve_for(template: PromptTemplate, profile: EngineProfile, tokenizer: TokenCounter, page_count: int) -> int:
    """Tokens kept free for the answer: its worst case (output_bounds.py) plus the end-of-sequence token, so a
    complete answer always fits. A template whose worst case passes the profile's output limit is refused."""
    worst = worst_case_tokens(answer_schema(template, profile, page_count), tokenizer) + 1
    if worst > profile.max_output_tokens:
        raise ConfigError(
            f"the '{template.name}' answer can take up to {worst:,} tokens on profile '{profile.name}', more than "
            f"its output limit of {profile.max_output_tokens:,}: lower the template's maxLength/maxItems bounds"
        )
    return worst


def measure(
    document: Document,
    template: PromptTemplate,
    profile: EngineProfile,
    tokenizer: TokenCounter,
    question: str | None = None,
) -> tuple[BudgetReport, BuiltPrompt]:
    prompt = build_prompt(document, template, tokenizer, question=question)
    overhead = overhead_tokens(document, template, tokenizer, question=question)
    report = BudgetReport(
        profile=profile.name,
        window=profile.max_model_len,
        prompt_tokens=prompt.tokens,
        document_tokens=max(prompt.tokens - overhead, 0),
        overhead_tokens=overhead,
        reserve_tokens=reserve_for(template, profile, tokenizer, document.page_count),
        exact=tokenizer.exact,
        counter=tokenizer.name,
    )
    return report, prompt


def over_budget_error(report: BudgetReport, *, path: str, document_id: str, hint: str = "") -> BudgetError:
    kind = "" if report.exact else " (estimated)"
    message = (
        f"too long for profile '{report.profile}': needs {report.needed:,} tokens{kind} "
        f"({report.prompt_tokens:,} prompt + {report.reserve_tokens:,} reserved for the answer), "
        f"window is {report.window:,}; nothing was truncated or sent"
    )
    if hint:
        message += f"; {hint}"
    return BudgetError(
        message,
        needed=report.needed,
        available=report.window,
        profile=report.profile,
        path=path,
        document_id=document_id,
    )


@dataclass(frozen=True)
class LengthFloor:
    """A lower bound on a document's tokens from its length alone: ``chars`` characters make at least
    ``ceil(chars / per_token)`` tokens (``per_token`` is the tokenizer's proven maximum, see
    ``ModelTokenizer.max_chars_per_token``). When even the bound does not fit the window, the exact count
    could not either: the document is refused without tokenising it, which on a text bomb of tens of millions
    of characters would take gigabytes. The bound ignores the prompt's own tokens, so it only errs low."""

    profile: str
    window: int
    chars: int
    per_token: int
    reserve_tokens: int

    @property
    def tokens(self) -> int:
        return -(-self.chars // self.per_token)

    @property
    def needed(self) -> int:
        return self.tokens + self.reserve_tokens

    @property
    def fits(self) -> bool:
        return self.needed <= self.window


def length_floor(
    document: Document, template: PromptTemplate, profile: EngineProfile, tokenizer: TokenCounter
) -> LengthFloor | None:
    """The bound for this document and profile, or None when the tokenizer offers no proven bound."""
    per_token = getattr(tokenizer, "max_chars_per_token", None)
    if not isinstance(per_token, int) or per_token < 1:
        return None
    return LengthFloor(
        profile.name,
        profile.max_model_len,
        len(document.text),
        per_token,
        reserve_for(template, profile, tokenizer, document.page_count),
    )


def length_error(floor: LengthFloor, *, path: str, document_id: str, hint: str = "") -> BudgetError:
    """over_budget_error's message, saying the count is a bound estimated from the length."""
    message = (
        f"too long for profile '{floor.profile}': needs at least {floor.needed:,} tokens (estimated from its "
        f"length: {floor.chars:,} characters, at most {floor.per_token} per token; {floor.reserve_tokens:,} "
        f"reserved for the answer), window is {floor.window:,}; nothing was truncated or sent"
    )
    if hint:
        message += f"; {hint}"
    return BudgetError(
        message, needed=floor.needed, available=floor.window, profile=floor.profile, path=path, document_id=document_id
    )
