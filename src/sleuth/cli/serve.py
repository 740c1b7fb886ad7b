"""``sleuth serve``: the retrieval server on an index folder."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import search_options
from sleuth.errors import SleuthError
from sleuth.serve.limits import (
    DEFAULT_MAX_BATCH_HITS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT_S,
)


def register(app: typer.Typer) -> None:
    app.command(
        "serve",
        help="Serve an index over HTTP: /search, /search/batch, /doc/{id}, /health and "
        "Search-R1's /retrieve (operations listed at /schema, OpenAPI at /schema/openapi.json). "
        "Logs one line per request to stderr unless --quiet.",
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


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, so failures (port taken, bad address) are reported before anything
    claims the server is up."""
    if not 0 <= port <= 65535:
        raise SleuthError(f"--port {port} is not a TCP port (0-65535; 0 picks a free one)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SleuthError(f"cannot bind {host}:{port}: unknown address ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        busy = exc.errno == errno.EADDRINUSE
        hint = "; is another server running there? choose another --port" if busy else ""
        raise SleuthError(f"cannot bind {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


AllowHost = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="Another name clients may use in the Host header (repeatable); requests naming "
        "any other host than these, loopback and --host are refused with a 421 (DNS rebinding)",
    ),
]


def run_on_socket(
    app: object, sock: socket.socket, *, forwarded_allow_ips: str | None = None
) -> None:
    """Serve ``app`` with uvicorn on the already-bound ``sock``. X-Forwarded-For/-Proto are
    trusted only from ``forwarded_allow_ips`` (off when None, whatever FORWARDED_ALLOW_IPS says)."""
    import uvicorn

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1",
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_command(
    index: Annotated[Path, typer.Argument(help="Index folder built by `sleuth index`")],
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to bind (0: any free port, shown at start)")
    ] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token required by every route but /health", envvar="SLEUTH_TOKEN"
        ),
    ] = None,
    default_topk: Annotated[int, typer.Option(help="topk for /retrieve when not given")] = 3,
    max_batch_hits: Annotated[
        int,
        typer.Option(help="Most hits one request may ask for (queries x k); more is a 413"),
    ] = DEFAULT_MAX_BATCH_HITS,
    max_response_bytes: Annotated[
        int, typer.Option(help="Largest response body in bytes; a larger answer is a 413")
    ] = DEFAULT_MAX_RESPONSE_BYTES,
    request_timeout: Annotated[
        float,
        typer.Option(help="Seconds of search one request may use; longer is stopped with a 413"),
    ] = DEFAULT_REQUEST_TIMEOUT_S,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No access log (errors are still logged)")
    ] = False,
    allow_host: AllowHost = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Behind a reverse proxy: trust its X-Forwarded-For/-Proto from these addresses "
            "(comma-separated, or *); off by default, so the access log shows the real peer"
        ),
    ] = None,
    encoder_backend: search_options.EncoderBackend = None,
    rerank: search_options.Rerank = None,
    simulate: search_options.Simulate = None,
) -> None:
    """Serve INDEX until interrupted."""
    from sleuth.display import safe_markup
    from sleuth.http_guard import HostAllowList
    from sleuth.progress import stderr
    from sleuth.search.factory import open_engine
    from sleuth.serve.access_log import configure_server_logging
    from sleuth.serve.app import create_app
    from sleuth.serve.limits import ServerLimits

    check_binding(host, token)
    limits = ServerLimits(max_batch_hits, max_response_bytes, request_timeout)
    engine = open_engine(
        index, simulate=simulate, rerank=rerank, encoder_backend=encoder_backend
    ).engine
    hosts = HostAllowList.for_bind(host, allow_host or ())
    app = create_app(
        engine,
        token=token,
        default_topk=default_topk,
        limits=limits,
        allowed_hosts=hosts,
        index_folder=index if (index / "manifest.json").is_file() else None,
        reopen=lambda: (
            open_engine(
                index, simulate=simulate, rerank=rerank, encoder_backend=encoder_backend
            ).engine
        ),
    )
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    base = f"http://{shown_host}:{bound_port}"
    configure_server_logging(quiet)
    shown_index = safe_markup(index)
    stderr.print(
        f"[green]serving[/green] {engine.name} index {shown_index} ({len(engine):,} docs) "
        f"at {base}\n"
        f"  POST {base}/search  POST {base}/search/batch  POST {base}/retrieve (Search-R1)\n"
        f"  GET  {base}/doc/{{id}}  GET {base}/health  docs {base}/schema"
        + (f"\n  POST {base}/documents  DELETE {base}/doc/{{id}} (updates)" if token else "")
        + ("\n  auth: Bearer token required" if token else "")
        + ("" if quiet else "\n  access log: one line per request (--quiet turns it off)"),
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    run_on_socket(app, sock, forwarded_allow_ips=forwarded_allow_ips)
