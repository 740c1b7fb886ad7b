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
        # The HTTP parser and event loop are named, not "auto": uvicorn's auto picks httptools
        # and uvloop whenever they happen to be installed (Ray brings both), which changed which
        # requests get a 400 with the environment, not with Sleuth. h11 and asyncio are what
        # every benchmark and test measured.
        http="h11",
        loop="asyncio",
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
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Deploy on Ray Serve (needs sleuth[ray]): --replicas copies behind Ray's HTTP "
            "proxy, a dense index optionally split into --shards",
        ),
    ] = False,
    replicas: Annotated[
        int, typer.Option(help="With --ray: replicas of the server (and of each shard)")
    ] = 1,
    shards: Annotated[
        int | None,
        typer.Option(
            help="With --ray: split a dense flat or SQ8 index into this many shards, each served "
            "by its own deployment; queries fan out and merge by score (the same top-k)"
        ),
    ] = None,
    ray_address: search_options.RayAddress = None,
    replica_cpus: Annotated[
        float, typer.Option(help="With --ray: CPUs Ray reserves for each replica (0.25 is fine)")
    ] = 0.5,
) -> None:
    """Serve INDEX until interrupted."""
    from sleuth.display import safe_markup
    from sleuth.http_guard import HostAllowList
    from sleuth.progress import stderr
    from sleuth.serve.access_log import configure_server_logging
    from sleuth.serve.limits import ServerLimits
    from sleuth.serve.spec import ServerSpec

    check_binding(host, token)
    limits = ServerLimits(max_batch_hits, max_response_bytes, request_timeout)
    hosts = HostAllowList.for_bind(host, allow_host or ())
    spec = ServerSpec(
        index,
        token=token,
        default_topk=default_topk,
        limits=limits,
        allowed_hosts=hosts,
        quiet=quiet,
        simulate=simulate,
        rerank=str(rerank) if rerank is not None else None,
        encoder_backend=encoder_backend,
    )
    if not ray:
        for flag, given in (
            ("--replicas", replicas != 1),
            ("--shards", shards is not None),
            ("--ray-address", ray_address is not None),
            ("--replica-cpus", replica_cpus != 0.5),
        ):
            if given:
                raise SleuthError(f"{flag} needs --ray (one process serves without it)")
    else:
        serve_on_ray(spec, host, port, replicas, shards or 0, ray_address, replica_cpus)
        return
    engine = spec.open_engine()
    app = spec.build_app(engine)
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


def serve_on_ray(
    spec: object,
    host: str,
    port: int,
    replicas: int,
    shards: int,
    address: str | None,
    replica_cpus: float,
) -> None:
    """``--ray``: deploy, print the banner, serve until Ctrl-C, then take the deployment down."""
    from sleuth.display import safe_markup
    from sleuth.progress import stderr
    from sleuth.serve.ray_app import (
        RayOptions,
        check_spec,
        deploy,
        require_ray,
        wait_until_stopped,
    )
    from sleuth.serve.spec import ServerSpec

    assert isinstance(spec, ServerSpec)
    require_ray()
    options = RayOptions(replicas, shards, replica_cpus=replica_cpus, shard_cpus=replica_cpus / 2)
    check_spec(spec, options)  # a bad index or layout is one line, before Ray starts
    if port == 0:  # Ray's proxy needs a number: take a free one now
        probe = bind_socket(host, 0)
        port = probe.getsockname()[1]
        probe.close()
    elif address is None:  # a taken port is one line, before Ray starts (a joined cluster's
        bind_socket(host, port).close()  # Serve proxy may hold it already: deploy checks that)
    stderr.print(f"starting Ray Serve ({'joining ' + address if address else 'local Ray'}) ...")
    deployment = deploy(spec, options, host=host, port=port, address=address)
    base = deployment.url
    layout = f"{replicas} replica{'s' if replicas != 1 else ''}"
    if shards:
        layout += f", {shards} shards (one deployment each)"
    stderr.print(
        f"[green]serving[/green] index {safe_markup(spec.index)} on Ray Serve ({layout}) "
        f"at {base}\n"
        f"  POST {base}/search  POST {base}/search/batch  POST {base}/retrieve (Search-R1)\n"
        f"  GET  {base}/doc/{{id}}  GET {base}/health  docs {base}/schema\n"
        "  Ctrl-C takes the deployment down",
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    wait_until_stopped(deployment.shutdown)
    stderr.print("Ray Serve deployment shut down")
