"""``serve``: one warm engine for every command (vLLM's OpenAI-compatible server for a profile; serving.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from docanalyst.cli.common import err, out, settings
from docanalyst.cli.options import EngineArgOpt, ProfileOpt, TensorParallelOpt

HostOpt = Annotated[
    str,
    typer.Option("--host", help="Address to listen on. Loopback only unless --allow-remote (which needs a key)."),
]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", help="Require this bearer key from clients (default: DOCANALYST_API_KEY, if set)."),
]
AllowRemoteOpt = Annotated[
    bool, typer.Option("--allow-remote", help="Allow a --host other machines can reach (requires an API key).")
]
ModelFolderOpt = Annotated[
    str | None,
    typer.Option("--model", help="A local Hugging Face model folder to serve instead (served under its folder name)."),
]


def serve(
    profile: ProfileOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8008,
    api_key: ApiKeyOpt = None,
    allow_remote: AllowRemoteOpt = False,
    engine_arg: EngineArgOpt = None,
    tensor_parallel_size: TensorParallelOpt = None,
    model: ModelFolderOpt = None,
) -> None:
    """Serve a profile's engine to every command: `extract`/`ask`/`batch`/`eval` then use it (auto on the
    default address, or --engine URL) instead of starting their own. Runs until Ctrl-C."""
    from docanalyst import quiet, serving
    from docanalyst.config import parse_engine_args
    from docanalyst.profiles import default_profile_name, get_profile

    config = settings()
    key = api_key or config.api_key
    serving.check_host(host, allow_remote=allow_remote, api_key=key)
    chosen = get_profile(default_profile_name(profile or config.profile))
    overrides = {**config.engine_args, **parse_engine_args(engine_arg or [], source="--engine-arg")}
    if tensor_parallel_size is not None:
        overrides["tensor_parallel_size"] = tensor_parallel_size
    serve_plan = serving.plan(
        config, chosen, model_folder=model, host=host, port=port, api_key=key, overrides=overrides,
        quiet=quiet.is_on(),
    )  # fmt: skip
    serving.check_port_free(host, port)
    err().print(
        f"starting the engine server for profile {chosen.name} (model {serve_plan.served_name}); "
        f"about 30-90 s on a CPU, 1-5 min on a GPU…",
        highlight=False,
        markup=False,  # a model name can hold brackets: "smollm2-135m-instruct [load_format=dummy]"
    )

    def ready(start_s: float) -> None:
        keyed = " --api-key KEY" if key else ""
        out().print(
            f"serving profile {chosen.name} (model {serve_plan.served_name}) at {serve_plan.url} — use it with "
            f"--engine {serve_plan.url}{keyed} or DOCANALYST_ENGINE (engine started in {start_s:.1f} s; Ctrl-C stops)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    serving.run(serve_plan, show_output=not quiet.is_on(), on_ready=ready)
