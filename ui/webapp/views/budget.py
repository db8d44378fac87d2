"""Step 2 of Analyse: each file's token budget for the chosen template and profile, counted in the reader
process (no engine); encrypted files ask for their password, files over the window are explained and skipped."""

from __future__ import annotations

from typing import Any

import streamlit as st

from webapp.cached import budget_for
from webapp.uploads import SavedUpload
from webapp.views.context import Page


def _blank(name: str, verdict: str) -> dict[str, Any]:
    return {"document": name, "pages": None, "tokens": None, "needed / window": "", "verdict": verdict}


def ask_password(page: Page, f: SavedUpload, error: str) -> None:
    st.warning(f"**{f.name}** is encrypted: {error.split(': ', 1)[-1]}")
    entered = st.text_input(f"Password for {f.name}", type="password", key=f"pw_{f.path.parent.name}")
    if entered and entered != page.password(f.sha256):
        page.state.passwords[f.sha256] = entered
        st.rerun()


def budget_row(page: Page, f: SavedUpload, template: str) -> tuple[dict[str, Any], bool]:
    """One file's row of the budget table, with its warnings drawn; (row, runnable)."""
    budget = budget_for(str(f.path), template, page.profile_name, page.password(f.sha256))
    if budget["error"] and budget.get("encrypted"):
        ask_password(page, f, budget["error"])
        return _blank(f.name, "password needed"), False
    if budget["error"]:
        st.error(budget["error"])
        return _blank(f.name, "✗ unreadable"), False
    for warning in budget["warnings"]:
        st.warning(f"{f.name}: {warning}")
    if not budget["fits"]:
        st.warning(
            f"{f.name}: over budget — it needs {budget['needed']:,} tokens but profile "
            f"'{page.profile_name}' has a {budget['window']:,}-token window ({budget['verdict']}). "
            "It is skipped; pick a profile with a longer window."
        )
    row = {
        "document": f.name,
        "pages": budget["pages"],
        "tokens": f"{budget['tokens']:,}{'' if budget['exact'] else ' (estimate)'}",
        "needed / window": f"{budget['needed']:,} / {budget['window']:,}",
        "verdict": "✓ fits" if budget["fits"] else f"✗ {budget['verdict']}",
    }
    return row, bool(budget["fits"])


def budget_table(page: Page, files: list[SavedUpload], template: str) -> list[str]:
    """Draw the budget of every file; the paths that fit and can run."""
    st.subheader("2 · Token budget")
    table, runnable = [], []
    for f in files:
        row, fits = budget_row(page, f, template)
        table.append(row)
        if fits:
            runnable.append(str(f.path))
    st.dataframe(table, hide_index=True, width="stretch", key="budget_table")
    return runnable
