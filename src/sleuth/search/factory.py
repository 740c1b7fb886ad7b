"""One place that turns a command's search options into an engine, with its label and manifest.

``--index | --search-url | (the bundled corpus) | --simulate | --rerank`` mean the same in every
command because every command opens its engine here: the "not both" check, the default corpus
and the order of the wrappers (real engine, then simulation over it, then a reranker over that)
are written once. A new kind of engine is one more branch in :func:`base_engine`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.search.bundled import DEFAULT_CORPUS, bundled_index

BUNDLED = "bundled"  # --index bundled: the bundled corpus's BM25 index (built once, cached)


@dataclass
class OpenedEngine:
    """An engine (None: no search at all, e.g. closed-book only), the manifest recorded beside
    results, and the label a run's config names it by."""

    engine: Any
    manifest: dict[str, Any] | None
    label: str | None


def check_one_source(index: str | Path | None, search_url: str | None) -> None:
    """A local index and a server cannot both be the engine: refused before any work."""
    if index is not None and search_url is not None:
        raise SleuthError(
            "give either --index (a local index folder) or --search-url (a server), not both"
        )


def base_engine(
    index: str | Path | None,
    search_url: str | None,
    *,
    default: str | None = DEFAULT_CORPUS,
    encoder_backend: str | None = None,
) -> OpenedEngine:
    """The real engine: an index folder (``bundled`` names the default corpus's), a Sleuth
    server, or, with neither, the bundled ``default`` corpus (None: no engine)."""
    check_one_source(index, search_url)
    if search_url is not None:
        from sleuth.search.remote import RemoteSearchEngine

        remote = RemoteSearchEngine(search_url)
        manifest: dict[str, Any] = {"url": search_url, "protocol": remote.protocol}
        if remote.pool.urls != [search_url.rstrip("/").removesuffix("/retrieve")]:
            manifest["urls"] = remote.pool.urls  # several servers, or an address file's
        health = getattr(remote, "_health", None)
        if isinstance(health, dict):
            manifest["health"] = health
        return OpenedEngine(remote, manifest, search_url)
    if index is not None and str(index) == BUNDLED and not Path(index).exists():
        index = bundled_index()
    if index is None:
        if default is None:
            return OpenedEngine(None, None, None)
        index = bundled_index(default)
    from sleuth.search.index_format import open_index, read_manifest

    path = Path(index).expanduser()
    extra = {"encoder_backend": encoder_backend} if encoder_backend else {}
    return OpenedEngine(open_index(path, **extra), read_manifest(path), str(path.resolve()))


def open_engine(
    index: str | Path | None = None,
    search_url: str | None = None,
    *,
    simulate: str | None = None,
    rerank: str | Path | None = None,
    rerank_depth: int | None = None,
    encoder_backend: str | None = None,
    default: str | None = DEFAULT_CORPUS,
    questions: Iterable[Any] = (),
    llm_url: str | None = None,
) -> OpenedEngine:
    """The engine every command searches: :func:`base_engine`, then ``--simulate`` over it
    (the default corpus when there is no engine to wrap; the ``questions``' gold evidence is
    kept out of its hard negatives), then ``--rerank`` over that. Without ``simulate`` and
    ``rerank`` it is the real engine unchanged."""
    opened = base_engine(index, search_url, default=default, encoder_backend=encoder_backend)
    return with_wrappers(
        opened,
        simulate=simulate,
        rerank=rerank,
        rerank_depth=rerank_depth,
        questions=questions,
        llm_url=llm_url,
    )


def with_wrappers(
    opened: OpenedEngine,
    *,
    simulate: str | None = None,
    rerank: str | Path | None = None,
    rerank_depth: int | None = None,
    questions: Iterable[Any] = (),
    llm_url: str | None = None,
) -> OpenedEngine:
    """``opened`` with ``--simulate`` and then ``--rerank`` over it: for a caller that keeps the
    real engine too (self-play draws its seed topics from the real index)."""
    if simulate is not None:
        from sleuth.search.simulated.spec import gold_ids_of, parse_spec, simulated_engine

        spec = parse_spec(simulate)
        if opened.engine is None:
            opened = base_engine(None, None, default=DEFAULT_CORPUS)
        opened = OpenedEngine(
            simulated_engine(opened.engine, spec, gold_ids=gold_ids_of(questions), llm_url=llm_url),
            {**(opened.manifest or {}), "simulated": spec.label()},
            f"{spec.label()} over {opened.label}",
        )
    if rerank and opened.engine is not None:
        from sleuth.search.rerank import DEFAULT_DEPTH, with_reranker

        depth = DEFAULT_DEPTH if rerank_depth is None else rerank_depth
        opened = OpenedEngine(
            with_reranker(opened.engine, rerank, depth),
            opened.manifest,
            f"{opened.label}+rerank:{Path(rerank).expanduser()}",
        )
    return opened
