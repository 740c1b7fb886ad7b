"""Joining or starting Ray, for every ``--ray`` command (``index --ray``, ``serve --ray``).

One place decides what ``--ray-address`` means, so the commands agree: none starts a new local
instance (``address="local"``: never a cluster another process started on this machine, which a
bare ``ray.init()`` would join), ``auto`` joins the cluster running here, ``HOST:PORT`` joins that
head after a 5-second reachability check (Ray itself retries for minutes before failing).
"""

from __future__ import annotations

import socket
from typing import Any

from sleuth.errors import SleuthError

EXTRA_HINT = "pip install 'sleuth[ray]'"


def import_ray(submodule: str, feature: str) -> Any:
    """``ray`` with ``ray.<submodule>`` importable, or a SleuthError naming ``feature`` and the
    extra that installs it."""
    try:
        import importlib

        import ray

        importlib.import_module(f"ray.{submodule}")
    except ImportError as exc:
        raise SleuthError(
            f"--ray needs {feature}, which is not installed ({exc.name or exc}): {EXTRA_HINT}"
        ) from None
    return ray


def host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``ray://HOST:PORT``) of ``--ray-address``, or a SleuthError."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SleuthError(f"--ray-address {address!r}: expected auto or HOST:PORT")
    return host.strip("[]"), int(port)


def check_address(address: str | None) -> None:
    """A malformed ``--ray-address``, refused before any work starts."""
    if address not in (None, "auto"):
        host_port(address)  # type: ignore[arg-type]


def connect(
    ray: Any, address: str | None, *, start: dict[str, Any] | None = None, **init: Any
) -> bool:
    """Start (``address`` None) or join Ray with ``ray.init(**init)``, plus ``start`` when it
    starts an instance (options Ray refuses when joining a cluster: CPUs, the dashboard); True
    when this call made the connection (False: this process was already connected, and keeps
    it)."""
    if ray.is_initialized():
        return False
    if address is None:
        init.update(start or {}, address="local")
    elif address == "auto":
        init["address"] = "auto"
    else:
        host, port = host_port(address)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise SleuthError(
                f"--ray-address {address}: cannot reach a Ray cluster there ({exc}); "
                "start one with `ray start --head` or give the head's address"
            ) from None
        init["address"] = address
    try:
        ray.init(**init)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SleuthError(f"cannot start {where}: {exc}") from None
    return True
