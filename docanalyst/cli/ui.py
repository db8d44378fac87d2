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


# The server's own settings for people, not developers: no file watcher (it scanned transformers and logged 309
# tracebacks about torchvision), a toolbar without Deploy, and Streamlit's own upload cap at the app's limit
# (uploads.MAX_UPLOAD_MB: a larger file is refused by the server before it is held in memory).
DEFAULTS = {"--server.fileWatcherType": "none", "--client.toolbarMode": "minimal", "--server.maxUploadSize": "50",
            "--browser.gatherUsageStats": "false"}  # fmt: skip


def with_defaults(args: list[str]) -> list[str]:
    """``args`` with DEFAULTS added for every setting the user did not give (``--x v`` or ``--x=v``)."""
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    return [*args, *(part for flag, value in DEFAULTS.items() if flag not in given for part in (flag, value))]


def ui(ctx: typer.Context) -> None:
    """Start the web app (Streamlit); extra options such as --server.port 8502 are passed through."""
    from docanalyst import lifecycle

    # A signal is passed on to the server, which closes its engine; the server dies with us if we are killed.
    command = lifecycle.streamlit_command(str(app_file()), with_defaults(list(ctx.args)))
    raise typer.Exit(lifecycle.run_child(command))
