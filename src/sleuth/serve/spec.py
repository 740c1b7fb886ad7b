"""What a retrieval server is made of, as plain data: ``sleuth serve`` builds its app from it,
and so does every Ray Serve replica (``sleuth.serve.ray_app``), which receives it pickled.
One recipe, so a replica answers exactly as the plain server does (routes, auth, limits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.http_guard import HostAllowList
from sleuth.search.base import SearchEngine
from sleuth.serve.limits import ServerLimits


@dataclass(frozen=True)
class ServerSpec:
    """The options of ``sleuth serve`` that shape the app (not where it listens)."""

    index: Path
    token: str | None = None
    default_topk: int = 3
    limits: ServerLimits = field(default_factory=ServerLimits)
    allowed_hosts: HostAllowList = field(default_factory=HostAllowList)
    quiet: bool = False
    simulate: str | None = None
    rerank: str | None = None
    encoder_backend: str | None = None

    def open_engine(self) -> SearchEngine:
        from sleuth.search.factory import open_engine

        return open_engine(
            self.index,
            simulate=self.simulate,
            rerank=self.rerank,
            encoder_backend=self.encoder_backend,
        ).engine

    def is_index_folder(self) -> bool:
        return (self.index / "manifest.json").is_file()

    def build_app(
        self,
        engine: SearchEngine | None = None,
        *,
        follow_updates: bool = True,
        updates_refused: str | None = None,
    ) -> Any:
        """The Litestar app serving ``engine`` (default: the index opened now)."""
        from sleuth.serve.app import create_app

        return create_app(
            engine if engine is not None else self.open_engine(),
            token=self.token,
            default_topk=self.default_topk,
            limits=self.limits,
            allowed_hosts=self.allowed_hosts,
            index_folder=self.index if self.is_index_folder() else None,
            reopen=self.open_engine,
            follow_updates=follow_updates,
            updates_refused=updates_refused,
        )
