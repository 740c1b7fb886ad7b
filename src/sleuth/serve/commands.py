"""``sleuth serve``: the retrieval server on an index folder."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer

from sleuth.errors import SleuthError


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve an index over HTTP: /search, /search/batch, /doc/{id}, /health and "
        "Search-R1's /retrieve (OpenAPI at /schema).",
    )(serve_command)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if not is_loopback(host) and not token:
        raise SleuthError(
            f"refusing to bind {host} without a token: anyone on the network could use the "
            "server. Pass --token (or set SLEUTH_TOKEN), or bind 127.0.0.1"
        )


def serve_command(
    index: Annotated[Path, typer.Argument(help="Index folder built by `sleuth index`")],
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token required by every route but /health", envvar="SLEUTH_TOKEN"
        ),
    ] = None,
    default_topk: Annotated[int, typer.Option(help="topk for /retrieve when not given")] = 3,
    encoder_backend: Annotated[
        str | None,
        typer.Option(help="Query encoder for dense/hybrid: onnx | onnx-int8 | openvino | torch"),
    ] = None,
) -> None:
    """Serve INDEX until interrupted."""
    import uvicorn

    from sleuth.progress import stderr
    from sleuth.search import open_index
    from sleuth.serve.app import create_app

    check_binding(host, token)
    engine = open_index(index, encoder_backend=encoder_backend)
    app = create_app(engine, token=token, default_topk=default_topk)
    base = f"http://{host}:{port}"
    stderr.print(
        f"[green]serving[/green] {engine.name} index {index} ({len(engine):,} docs) at {base}\n"
        f"  POST {base}/search  POST {base}/search/batch  POST {base}/retrieve (Search-R1)\n"
        f"  GET  {base}/doc/{{id}}  GET {base}/health  OpenAPI {base}/schema/openapi.json"
        + ("\n  auth: Bearer token required" if token else "")
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
