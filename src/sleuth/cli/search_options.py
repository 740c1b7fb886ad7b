"""Command-line options that choose the search engine, shared by every command that searches:
one declaration each, so ``--index``, ``--search-url``, ``--simulate``, ``--rerank`` and
``--encoder-backend`` read the same in ``ask``, ``eval run``, ``serve``, ``search``, ``mcp`` and the
trainers. ``sleuth.search.factory.open_engine`` turns their values into the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Index = Annotated[
    Path | None,
    typer.Option(
        help="Index folder built by `sleuth index` (default: the bundled HotpotQA BM25 index; "
        "'bundled' names it too)"
    ),
]
SEARCH_URL_HELP = (
    "A Sleuth retrieval server URL or a Search-R1 /retrieve URL; several, comma-separated "
    "(balanced, with failover), or @FILE: a file of URLs, one a line, reread when it changes "
    "(docs/serving.md)"
)
SearchUrl = Annotated[str | None, typer.Option(help=SEARCH_URL_HELP)]

SPEC_HELP = (
    "Search a simulated engine wrapping the index (docs/simulation.md): "
    "'corpus:noise=0.3,seed=1' mixes real hits with hard negatives and random passages; "
    "'llm:noise=0.5,k=3[,model=...]' has an LLM write useful/noisy documents (ZeroSearch)."
)
Simulate = Annotated[str | None, typer.Option("--simulate", help=SPEC_HELP)]
Rerank = Annotated[
    Path | None,
    typer.Option(
        help="Cross-encoder folder (from `sleuth train retriever --reranker`) that reorders "
        "the top hits of each search (20, or --rerank-depth where a command has it)"
    ),
]
EncoderBackend = Annotated[
    str | None,
    typer.Option(
        help="Dense encoder runtime (dense and hybrid indexes): onnx (default) | onnx-int8 | "
        "openvino | torch; the first use of onnx/openvino exports the model once into the cache"
    ),
]
# index --ray and serve --ray: what the address means is ``sleuth.search.ray_cluster``'s.
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="With --ray: join a running cluster ('auto', or the HOST:PORT of `ray start "
        "--head`); without it a Ray instance is started here for this command and stopped after"
    ),
]
