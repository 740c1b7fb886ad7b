"""``sleuth serve INDEX --ray``: the same retrieval server as N replicas on Ray Serve.

Each replica builds the plain server's Litestar app from the same ``ServerSpec`` at start
(``serve.ingress`` of a late-bound ASGI app), so every route, schema, limit and the token check
are the plain server's own; Ray Serve's HTTP proxy spreads requests over the replicas and
starts a new replica when one dies. Replicas of one folder converge after an update: the
replica that takes ``POST /documents`` commits a generation (one commit at a time, a file lock),
the others' index watch opens it before their next request (``sleuth.serve.index_watch``).

With ``--shards S`` (a dense flat or SQ8 index), S shard deployments each load one shard file
(``sleuth.search.dense_shards``) and the replicas of the front deployment encode the query, fan
it out to every shard and merge by score.

Ray is imported only here; ``require_ray`` says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.search import ray_cluster
from sleuth.serve.spec import ServerSpec

APP_NAME = "sleuth"
SHARDED_UPDATES = (
    "a sharded deployment takes no updates: its shards were split from one generation. Update "
    "the index (sleuth index update INDEX ...) and deploy it again"
)


def require_ray() -> Any:
    """The ``ray`` module with Serve, or a SleuthError naming the extra to install."""
    return ray_cluster.import_ray("serve", "Ray Serve")


@dataclass(frozen=True)
class RayOptions:
    """How the deployment is laid out on the cluster."""

    replicas: int = 1
    shards: int = 0
    replica_cpus: float = 0.5
    shard_cpus: float = 0.25
    max_ongoing_requests: int = 64
    proxy_location: str = "EveryNode"  # an HTTP proxy on each node: clients may call any node

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise SleuthError(f"--replicas {self.replicas}: give at least 1")
        if self.replica_cpus <= 0 or self.shard_cpus <= 0:
            raise SleuthError("--replica-cpus must be positive (fractions such as 0.25 are fine)")


def _server_class() -> Any:
    from ray import serve

    @serve.deployment
    @serve.ingress()
    class SleuthServer:
        """One replica of the retrieval server (with ``shards``: the sharded front end)."""

        def __init__(self, spec: ServerSpec, metric: str = "ip", *shards: Any) -> None:
            self.spec, self.metric, self.shards = spec, metric, shards

        def __serve_build_asgi_app__(self) -> Any:
            from sleuth.serve.access_log import configure_server_logging

            configure_server_logging(self.spec.quiet)
            if not self.shards:
                return self.spec.build_app()
            from sleuth.search.dense_shards import ShardedDenseEngine

            engine = ShardedDenseEngine(
                self.spec.index,
                self._fan_out,
                metric=self.metric,
                encoder_backend=self.spec.encoder_backend,
            )
            return self.spec.build_app(
                engine, follow_updates=False, updates_refused=SHARDED_UPDATES
            )

        def _fan_out(self, vectors: Any, k: int) -> list[Any]:
            """Ask every shard at once (called from the app's worker threads)."""
            pending = [shard.search.remote(vectors, k) for shard in self.shards]
            return [response.result() for response in pending]

    return SleuthServer


def _shard_class() -> Any:
    from ray import serve

    @serve.deployment
    class DenseShardServer:
        """One shard of a dense index: query vectors in, global rows and distances out."""

        def __init__(self, folder: str, count: int, metric: str, number: int) -> None:
            from sleuth.search.dense_shards import DenseShard, ShardSet

            shards = ShardSet(Path(folder), count, metric, 0, 0)
            self.shard = DenseShard(shards, number)

        def search(self, vectors: Any, k: int) -> Any:
            return self.shard.search(vectors, k)

    return DenseShardServer


def build_application(spec: ServerSpec, options: RayOptions) -> Any:
    """The Serve application: the replicated server, and with shards the shard deployments
    bound into it. Shard files are built here, once, in the calling process."""
    server = _server_class().options(
        name="SleuthServer",
        num_replicas=options.replicas,
        max_ongoing_requests=options.max_ongoing_requests,
        ray_actor_options={"num_cpus": options.replica_cpus},
    )
    if not options.shards:
        return server.bind(spec)
    from sleuth.search.dense_shards import build_shards

    shard_set = build_shards(spec.index, options.shards)
    shard = _shard_class()
    bound = [
        shard.options(
            name=f"DenseShard{number}",
            num_replicas=options.replicas,
            max_ongoing_requests=options.max_ongoing_requests,
            ray_actor_options={"num_cpus": options.shard_cpus},
        ).bind(str(shard_set.folder), shard_set.count, shard_set.metric, number)
        for number in range(shard_set.count)
    ]
    return server.bind(spec, shard_set.metric, *bound)


def check_spec(spec: ServerSpec, options: RayOptions) -> None:
    """Refuse what a deployment cannot serve, before Ray starts (cheap checks only: the
    replicas open the index themselves)."""
    from sleuth.search.index_format import read_manifest

    if not spec.is_index_folder():
        raise SleuthError(
            f"--ray serves an index folder built by `sleuth index`; {spec.index} is not one "
            "(every replica opens it by path)"
        )
    read_manifest(spec.index)  # a damaged or foreign folder is named before Ray starts
    if options.shards:
        from sleuth.search.dense_shards import check_shardable

        check_shardable(spec.index, options.shards)
        if spec.simulate or spec.rerank:
            raise SleuthError("--shards serves the dense index alone: drop --simulate/--rerank")


@dataclass
class Deployment:
    """A running deployment: its URL and how to take it down."""

    url: str
    started_ray: bool
    ray: Any

    def shutdown(self) -> None:
        """Delete the application; when this process started Ray, stop Serve and Ray too (a
        cluster given by --ray-address keeps running)."""
        from ray import serve

        try:
            if self.started_ray:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
        finally:
            if self.ray.is_initialized():
                self.ray.shutdown()


def deploy(
    spec: ServerSpec,
    options: RayOptions,
    *,
    host: str,
    port: int,
    address: str | None = None,
    num_cpus: float | None = None,
) -> Deployment:
    """Start (or join, with ``address``) Ray, start Serve's HTTP proxy on host:port and run the
    application; returns once every replica is up. Any failure shuts down what it started."""
    ray = require_ray()
    from ray import serve

    check_spec(spec, options)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    runtime_env = {"env_vars": _worker_env()}
    connected = ray_cluster.connect(
        ray,
        address,
        start={"num_cpus": num_cpus, "include_dashboard": False},
        log_to_driver=False,
        runtime_env=runtime_env,
    )
    started = connected and address is None  # a Ray instance of this process's own, to stop
    deployment = Deployment(f"http://{_shown(host)}:{port}", started, ray)
    try:
        serve.start(
            http_options={"host": host, "port": port}, proxy_location=options.proxy_location
        )
        _check_proxy(host, port)
        application = build_application(spec, options)
        serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the first error is the one to report
            deployment.shutdown()
        if isinstance(exc, SleuthError | KeyboardInterrupt):
            raise
        raise SleuthError(f"the Ray Serve deployment failed: {_first_line(exc)}") from None
    return deployment


def _check_proxy(host: str, port: int) -> None:
    """Serve already running on a cluster keeps its proxy's address: say so rather than print
    a URL nothing listens on."""
    from ray.serve.context import _get_global_client

    config = _get_global_client().http_config
    if (config.host, config.port) != (host, port):
        raise SleuthError(
            f"Ray Serve already runs on this cluster with its HTTP proxy at "
            f"{config.host}:{config.port}; give --host {config.host} --port {config.port}, or "
            "stop it first (serve shutdown)"
        )


def _worker_env() -> dict[str, str]:
    """What replicas need from this process's environment (offline models, the source tree)."""
    keep = ("PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SLEUTH_ENCODER_BACKEND")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    errors = [line for line in text if "Error" in line and ":" in line]
    return (errors[-1] if errors else text[0] if text else type(exc).__name__).strip()


def wait_until_stopped(on_stop: Callable[[], None]) -> None:
    """Block until Ctrl-C or SIGTERM, then ``on_stop`` (takes the deployment down)."""
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        on_stop()
