"""``sleuth serve-llm``: share one in-process model over an OpenAI-compatible API."""

from __future__ import annotations

from typing import Annotated

import typer

from sleuth.cli.serve import AllowHost
from sleuth.llm import OPENVINO_BACKENDS

model_app = typer.Typer(
    help="Local models: prepare (convert once into the cache) and list the named ones.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.command(
        "serve-llm",
        help="Serve a model as an OpenAI-compatible /v1/chat/completions (default: the packaged "
        "SmolLM2-135M).",
    )(serve_llm_command)


def serve_llm_command(
    model: Annotated[
        str | None,
        typer.Option(help="HF id, folder, .gguf or a named model (default: packaged SmolLM2)"),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8001,
    token: Annotated[
        str | None, typer.Option(help="Bearer token required by clients", envvar="SLEUTH_TOKEN")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option(help="Requests handed to the model at once (batched by openvino)")
    ] = 64,
    max_queued: Annotated[
        int, typer.Option(help="Requests that may wait for a turn beyond those (503 above)")
    ] = 256,
    backend: Annotated[
        str, typer.Option(help="auto | openvino (continuous batching) | transformers")
    ] = "auto",
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body accepted (413 above)")
    ] = 1024 * 1024,
    allow_host: AllowHost = None,
) -> None:
    """Load MODEL once and serve it until interrupted."""
    from sleuth.cli.serve import bind_socket, check_binding, run_on_socket
    from sleuth.display import safe_markup
    from sleuth.http_guard import HostAllowList
    from sleuth.llm import load_llm
    from sleuth.llm.serve_llm import create_llm_app
    from sleuth.progress import stderr
    from sleuth.serve.access_log import configure_server_logging

    if max_concurrency < 1 or max_queued < 0:
        raise typer.BadParameter("--max-concurrency must be at least 1, --max-queued at least 0")
    check_binding(host, token)
    sock = bind_socket(host, port)  # a taken port fails here, before the model loads
    stderr.print("loading model ...")
    llm = load_llm(model, backend=backend)
    app = create_llm_app(
        llm,
        token=token,
        max_concurrency=max_concurrency,
        max_queued=max_queued,
        max_body_bytes=max_body_bytes,
        allowed_hosts=HostAllowList.for_bind(host, allow_host or ()),
    )
    configure_server_logging(quiet=True)  # tracebacks of unexpected errors to stderr
    shown_host = f"[{host}]" if ":" in host else host
    stderr.print(
        f"[green]serving[/green] {safe_markup(llm.name)} at "
        f"http://{shown_host}:{sock.getsockname()[1]}/v1 "
        "(POST /v1/chat/completions, GET /v1/models)"
    )
    run_on_socket(app, sock)


@model_app.command("prepare")
def prepare_command(
    model: Annotated[
        str | None,
        typer.Option(help="HF id, folder, .gguf or a named model (default: packaged SmolLM2)"),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="openvino (fp16) | openvino-int8 | openvino-fp32 | transformers")
    ] = "openvino",
) -> None:
    """Convert MODEL for BACKEND now (GGUF -> HF folder -> OpenVINO), so first use is fast."""
    import time

    from sleuth.display import safe_markup
    from sleuth.llm.models import resolve_hf_folder
    from sleuth.progress import stderr

    started = time.perf_counter()
    folder, name = resolve_hf_folder(model)
    if backend in OPENVINO_BACKENDS:
        from sleuth.llm.openvino_export import openvino_model_dir

        folder = str(openvino_model_dir(folder, name, OPENVINO_BACKENDS[backend]))
    elif backend != "transformers":
        choices = ", ".join([*OPENVINO_BACKENDS, "transformers"])
        raise typer.BadParameter(f"--backend must be one of {choices}")
    seconds = time.perf_counter() - started
    stderr.print(f"{safe_markup(name)} ready for {backend}: {safe_markup(folder)} ({seconds:.0f}s)")


@model_app.command("list")
def list_command() -> None:
    """The named local models and how to install them."""
    from sleuth.agent.trained_settings import (
        describe,
        trained_as_searcher,
        trained_settings,
        trained_to_follow_links,
    )
    from sleuth.llm.models import SHIPPED_ADAPTERS
    from sleuth.llm.named import NAMED_MODELS, install_command

    for name in SHIPPED_ADAPTERS:
        typer.echo(f"{name}  (shipped LoRA adapter on the packaged SmolLM2-135M, Apache-2.0)")
        trained = describe(trained_settings(name))
        typer.echo(f"    installed with sleuth; runs as it was trained: {trained}")
        if trained_as_searcher(name):
            method = "searcher_links@K" if trained_to_follow_links(name) else "searcher@K"
            typer.echo(
                f"    a searcher: a reader answers (--reader; `ask` defaults to the base model; "
                f"eval method {method})"
            )
    for name, spec in NAMED_MODELS.items():
        typer.echo(f"{name}  ({spec.size / 1e6:.0f} MB GGUF, {spec.license})")
        typer.echo(f"    {install_command(name)}")
        typer.echo(f"    (or, from a Sleuth checkout: pip install -e '.[{spec.extra}]')")
