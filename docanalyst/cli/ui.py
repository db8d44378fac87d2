"""``ui``: the web app (Streamlit) as a child process that dies with this one."""

from __future__ import annotations

from pathlib import Path

import typer

from docanalyst.errors import DocanalystError

_PACKAGE = Path(__file__).resolve().parent.parent  # docanalyst/


def app_file() -> Path:
    """ui/app.py: packaged as docanalyst/_ui/app.py in a wheel, at the repository root in a checkout."""
    for candidate in (_PACKAGE / "_ui" / "app.py", _PACKAGE.parent / "ui" / "app.py"):
        if candidate.exists():
            return candidate
    raise DocanalystError("the web app is not installed (ui/app.py is missing)")


def ui(ctx: typer.Context) -> None:
    """Start the web app (Streamlit); extra options such as --server.port 8502 are passed through."""
    from docanalyst import lifecycle

    # A signal is passed on to the server, which closes its engine; the server dies with us if we are killed.
    raise typer.Exit(lifecycle.run_child(lifecycle.streamlit_command(str(app_file()), ctx.args)))
