"""The sidebar: what to run (template, engine profile, reuse or recompute) and the engine's state."""

from __future__ import annotations

import streamlit as st

from docanalyst.config import Settings
from docanalyst.profiles import PROFILES, default_profile_name, get_profile
from docanalyst.store import Store
from webapp.cached import get_holder
from webapp.engine_holder import EngineHolder
from webapp.views.context import Page
from webapp.views.templates import pick_template


def engine_status() -> None:
    """The engine's state; a fragment of its own, so it can redraw without rerunning the page."""
    holder = get_holder()
    status, name, seconds = holder.state()
    if status == "idle":
        st.caption("Engine: not loaded yet (it starts when you add a document).")
    elif status == "loading":
        st.info(f"Engine '{name}' loading… {seconds:.0f} s (the page stays usable)")
    elif status == "ready":
        st.success(f"Engine '{name}' ready (loaded in {seconds:.0f} s)")
    else:
        st.error(f"Engine: {holder.error}")


def pick_profile(settings: Settings) -> str:
    names = list(PROFILES)
    default = default_profile_name(settings.profile)
    name = st.selectbox(
        "Engine profile",
        names,
        index=names.index(default) if default in names else 0,
        key="profile",
        help="embedded runs on the CPU and is small; qwen3-next needs a GPU.",
    )
    profile = get_profile(name)
    st.caption(f"{profile.description} · window {profile.max_model_len:,} tokens")
    return str(name)


def sidebar(settings: Settings, holder: EngineHolder, store: Store) -> Page:
    """Draw the sidebar; the choices it holds, as the Page every view gets."""
    with st.sidebar:
        st.header("Settings")
        template = pick_template(settings.home)
        profile_name = pick_profile(settings)
        force = st.checkbox(
            "Recompute stored runs", value=False, key="force", help="Otherwise an identical stored run is reused."
        )
        # Redrawn every 2 s only while loading, so the page shows the engine becoming ready by itself.
        st.fragment(engine_status, run_every=2.0 if holder.state()[0] == "loading" else None)()
    return Page(settings, holder, store, template, profile_name, bool(force))
