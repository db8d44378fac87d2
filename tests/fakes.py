"""A scripted engine for fast unit tests of the pipeline's control flow (never proof that extraction works:
the engine tests drive the real vLLM engine)."""

from __future__ import annotations

from collections.abc import Sequence

from docanalyst.engines import GenerationRequest, GenerationResult
from docanalyst.profiles import EngineProfile


class ScriptedEngine:
    def __init__(self, profile: EngineProfile, answers: list[tuple[str, str]]) -> None:
        self.profile = profile
        self.model_name = "scripted"
        self.answers = list(answers)  # (text, finish_reason), consumed in order
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for request in requests:
            self.requests.append(request)
            text, reason = self.answers.pop(0)
            out.append(GenerationResult(text, reason, len(request.prompt_token_ids), 0, 7, 0.01, 0.1))
        return out

    def close(self) -> None:
        pass
