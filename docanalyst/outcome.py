"""What happened to one question about one document (``Outcome``): what every face prints, exports and tests.

Its own module so that the pipeline stays one loop; ``docanalyst.pipeline`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docanalyst.budget import BudgetReport
from docanalyst.document import Document
from docanalyst.errors import DocanalystError
from docanalyst.generation import Job
from docanalyst.grounding import GroundedField, summarise
from docanalyst.prompting import PromptTemplate
from docanalyst.statuses import RunStatus


@dataclass(frozen=True)
class Outcome:
    """What happened to one question about one document; built once, when it is known (see RunStatus)."""

    path: str
    status: RunStatus
    document: Document | None = None
    template: PromptTemplate | None = None
    profile: str | None = None
    model: str | None = None
    result: dict[str, Any] | None = None
    fields: list[GroundedField] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    budget: BudgetReport | None = None
    run_id: int | None = None
    error: DocanalystError | None = None
    notes: list[str] = field(default_factory=list)
    question: str | None = None
    missing: list[str] = field(default_factory=list)  # partial runs: the fields the answer did not deliver
    # field groups: the one-token prefill's and each group's usage (Job.group_usage); None for one request
    field_groups: dict[str, Any] | None = None

    @classmethod
    def failed(cls, path: str | Path, error: DocanalystError, status: RunStatus = RunStatus.ERROR) -> Outcome:
        """A document that never reached the engine (reading, budget, a stored run that could not be read)."""
        return cls(path=str(path), status=status, error=error)

    @classmethod
    def of_job(cls, job: Job, status: RunStatus, **done: Any) -> Outcome:
        """The job's document, template, profile and budget, with what became of it (``done``)."""
        return cls(
            path=job.path, status=status, document=job.document, template=job.template, profile=job.plan.profile.name,
            model=job.plan.model_name, budget=job.plan.budget, notes=list(job.plan.notes), question=job.question,
            **{"timings": dict(job.timings), **done},
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        return self.status.usable

    def as_json(self) -> dict[str, Any]:
        doc = self.document
        return {
            "document": {
                "sha256": doc.sha256 if doc else None,
                "path": self.path,
                "pages": doc.page_count if doc else None,
                "tokens": self.budget.document_tokens if self.budget else None,
            },
            "template": self.template.name if self.template else None,
            "template_version": self.template.version if self.template else None,
            "question": self.question,
            "profile": self.profile,
            "model": self.model,
            "status": self.status,
            "result": self.result,
            "grounding": summarise(self.fields).as_dict() if self.result is not None else None,
            "usage": self.usage,
            "field_groups": self.field_groups,
            "timings": self.timings,
            "run_id": self.run_id,
            "missing": self.missing,
            "error": str(self.error) if self.error else None,
            "warnings": [*(doc.warnings if doc else ()), *self.notes],
        }
