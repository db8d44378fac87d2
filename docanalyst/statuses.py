"""Every status word docanalyst stores, prints or passes between modules, typed.

They are StrEnums whose values are the words the database, the JSON output and the tests have always used, so a
stored row compares equal to its member (``RunStatus.OK == "ok"``) and nothing already written needs migrating.
A typo in a status is now a mypy or import error instead of a branch that silently never runs.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """How one question about one document ended (``Outcome.status``; the stored ``runs.status``)."""

    OK = "ok"
    CACHED = "cached"  # answered from a stored run (never stored itself)
    PARTIAL = "partial"  # the complete, valid fields of an answer that failed
    INVALID = "invalid"  # not valid after one re-ask, nothing salvaged
    TRUNCATED = "truncated"  # cut off at max_tokens, nothing salvaged
    UNGROUNDED = "ungrounded"  # --strict: a quote was not found in the document
    FAILED = "failed"  # the engine failed while generating
    ERROR = "error"  # the document never reached the engine (reading, budget, engine start)
    SKIPPED = "skipped"  # batch: too long for every allowed profile

    @property
    def usable(self) -> bool:
        """A valid answer the user can take as it is."""
        return self in (RunStatus.OK, RunStatus.CACHED)


# Every status a stored run can end with that answers the question again: `batch --resume` and `eval` reuse them
# all (greedy decoding would give the same answer again); `extract` reuses only valid results.
FLAGGED_STATUSES: tuple[RunStatus, ...] = tuple(
    s for s in RunStatus if s not in (RunStatus.CACHED, RunStatus.FAILED, RunStatus.ERROR, RunStatus.SKIPPED)
)


class QuoteStatus(StrEnum):
    """Where a value's quote was found in the document (grounding.py; the stored ``fields.quote_status``)."""

    EXACT = "exact"
    NORMALISED = "normalised"  # after folding quotes, dashes, hyphenation and whitespace
    FUZZY = "fuzzy"
    NOT_FOUND = "not_found"
    NO_QUOTE = "no_quote"  # the value came without a quote
    # --evidence refs (evidence.py): the value cited numbered sentences; its quote is their text, by construction
    CITED = "cited"
    UNKNOWN_REFERENCE = "unknown_reference"  # it cited ids, none of them in the document
    # support.py: a quote too short to prove anything (")", "USD"), found or not; a quote found in the document
    # that does not say what its value says. Neither counts as evidence.
    TOO_SHORT = "too_short"
    UNSUPPORTED = "unsupported"

    @property
    def found(self) -> bool:
        return self in (QuoteStatus.EXACT, QuoteStatus.NORMALISED, QuoteStatus.FUZZY, QuoteStatus.CITED)


class GroundingVerdict(StrEnum):
    """How well a whole run is backed by its evidence (grounding.GroundingSummary.verdict): the share of the values
    that assert something whose quote was found and supports them. A run can be ``ok`` (a valid answer) and
    ``weak`` at once; ``--strict`` fails anything but ``grounded``."""

    GROUNDED = "grounded"  # at least VERDICT_GROUNDED of the asserted values verified (or nothing asserted)
    WEAK = "weak"  # at least VERDICT_WEAK of them
    UNGROUNDED = "ungrounded"  # fewer


class ReviewAction(StrEnum):
    """What a reviewer did to a stored value (revisions.py; the stored ``revisions.action``)."""

    ACCEPTED = "accepted"  # the model's value is right
    EDITED = "edited"  # the right value is another one
    REJECTED = "rejected"  # the document does not say this: no value


class Fit(StrEnum):
    """The kind of a budget verdict."""

    FITS = "fits"
    TOO_LONG = "too-long"
    NEEDS_LONG = "needs-long-profile"  # fits only the profile's long (YaRN) fallback


class Verdict(str):
    """The `tokens` verdict: its text is the one printed and written to JSON ('fits', 'too-long',
    'needs qwen3-next-1m (YaRN)'), its ``kind`` typed. A str, so JSON, tables and comparisons take it as it is."""

    kind: Fit
    profile: str | None

    def __new__(cls, kind: Fit | str, profile: str | None = None) -> Verdict:
        kind = Fit(kind)
        text = f"needs {profile} (YaRN)" if kind is Fit.NEEDS_LONG else kind.value
        made = super().__new__(cls, text)
        made.kind, made.profile = kind, profile
        return made

    def __getnewargs__(self) -> tuple[Fit, str | None]:  # type: ignore[override]  # copy and pickle
        return self.kind, self.profile

    @classmethod
    def parse(cls, text: str) -> Verdict:
        """The verdict a text stands for (a reader process's answer crosses a pipe as JSON)."""
        if text.startswith("needs ") and text.endswith(" (YaRN)"):
            return cls(Fit.NEEDS_LONG, text[len("needs ") : -len(" (YaRN)")])
        return cls(Fit(text))

    @property
    def runnable(self) -> bool:
        """It can be analysed (on the requested profile or, with --allow-yarn, its long fallback)."""
        return self.kind is not Fit.TOO_LONG


class BatchEvent(StrEnum):
    """What ``run_batch`` reports to its ``on_event`` callback."""

    READ = "read"  # a document was read and measured (info: pages, tokens)
    ENGINE = "engine"  # the engine is starting (info: documents waiting for it)
    DONE = "done"  # a document's outcome is final
