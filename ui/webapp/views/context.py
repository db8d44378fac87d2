"""What every view needs, gathered once per rerun: settings, the server's engine and store, and the choices
made in the sidebar. Passed explicitly, so a view is a plain function of it (no closures over ``main``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from docanalyst.config import Settings
from docanalyst.errors import DocanalystError
from docanalyst.pipeline import Analyzer
from docanalyst.profiles import get_profile
from docanalyst.store import Store
from webapp.engine_holder import EngineHolder
from webapp.jobs import RunJob

RUN_TIMEOUT_S = 60 * 60


@dataclass
class Page:
    settings: Settings
    holder: EngineHolder
    store: Store
    template: str | None  # a template name, or an uploaded template file's path; None: the upload is invalid
    profile_name: str
    force: bool

    @property
    def state(self) -> Any:
        return st.session_state

    def password(self, sha256: str) -> str | None:
        return self.state.passwords.get(sha256)

    def analyzer(self) -> Analyzer:
        """An Analyzer for one rerun's work, on the server's engine pool (an Analyzer never closes a pool it
        was given, so the engine outlives the rerun)."""
        return Analyzer(self.settings, store=self.store, pool=self.holder.pool)

    def model_ref_for(self, profile_name: str) -> str | None:
        """The model the profile loads; None (with the reason shown) when it is not installed."""
        try:
            ref, _ = Analyzer(self.settings).resolve_model(get_profile(profile_name), None)
        except DocanalystError as exc:
            st.error(str(exc))
            return None
        return ref


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def follow(page: Page, job: RunJob, bar: Any) -> tuple[list[Any], list[str]]:
    """Draw a job's progress until it ends (the work runs on its own thread); (outcomes, errors)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not job.done and time.monotonic() < deadline:
        status, name, seconds = page.holder.state()
        stages = ", ".join(f"{Path(p).name}: {s}" for p, s in job.stages.items())
        if job.waiting_for_lock:
            text = "waiting for another analysis on this server to finish…"
        elif status == "loading":
            text = f"starting the engine '{name}' ({seconds:.0f} s)… {stages}"
        else:
            text = f"{stages} · {time.monotonic() - job.started:.0f} s"
        bar.progress(min(job.fraction, 0.99), text=text)
        time.sleep(0.3)
    bar.progress(1.0, text="done")
    if not job.done:
        return [], ["this is taking too long; it continues on the server: look in History later"]
    if job.error is not None:
        return [], [first_line(job.error)]
    return list(job.outcomes or []), []
