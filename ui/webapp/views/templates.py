"""Choosing what to extract: a template from the registry (built-ins and ``DOCANALYST_HOME/templates``), or a
template file the user uploads (YAML or JSON, the format ``docanalyst templates show`` prints).

An uploaded file is checked with the same code as ``docanalyst templates check``; a bad one shows that one-line
error and blocks analysis (running silently with another template would hand back the wrong fields).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from docanalyst.errors import DocanalystError
from docanalyst.templates import Template, check_template_file, list_templates
from webapp.uploads import UploadError, save_template_upload


def describe(template: Template) -> None:
    names = ", ".join(template.field_specs)
    source = "built-in" if template.source == "built-in" else Path(template.source).name
    st.caption(f"{template.label} · v{template.version} · {source}" + (f" · fields: {names}" if names else ""))


def uploaded_template(home: Path) -> tuple[bool, str | None]:
    """(a file was uploaded, the path to run with, or None when the file is not a valid template)."""
    upload = st.file_uploader(
        "…or upload a template file (YAML or JSON)",
        type=["yaml", "yml", "json"],
        key="template_upload",
        help="The format `docanalyst templates show contract` prints; start from a copy of a built-in.",
    )
    if upload is None:
        return False, None
    try:
        saved = save_template_upload(home, upload.name, upload.getvalue())
        template = check_template_file(saved.path)
    except (UploadError, DocanalystError, OSError) as exc:
        st.error(str(exc))
        st.caption("Fix the file or remove it to analyse.")
        return True, None
    st.success(f"Using the uploaded template '{template.name}'")
    describe(template)
    return True, str(saved.path)


def pick_template(home: Path) -> str | None:
    """The template reference for ``ExtractOptions.template``: a name, or an uploaded file's path."""
    templates = {t.name: t for t in list_templates(home)}  # files there that do not check are left out
    name = st.selectbox(
        "Template",
        list(templates),
        format_func=lambda n: f"{n} ({templates[n].source if templates[n].source == 'built-in' else 'yours'})",
        key="template",
        help="What to extract. Your own templates go in DOCANALYST_HOME/templates.",
        disabled=st.session_state.get("template_upload") is not None,  # an uploaded file is used instead
    )
    uploaded, path = uploaded_template(home)
    if uploaded:
        return path
    describe(templates[name])
    return str(name)
