"""A dense index split into shards answers exactly as the whole index (issue 30 item 3).

A real MiniLM index of bundled HotpotQA paragraphs is split into 2-4 shard files; searched
shard by shard in this process and merged, the top-k (ids, scores, ranks) equals the single
engine's, for single and batched queries, a flat and an SQ8 index, and an updated index whose
deleted rows are left out of the shards. BM25, hybrid and graph indexes are refused with the
reason. (The Ray deployment of the same shards is tests/test_ray_serve.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleuth.corpus import load_documents
from sleuth.errors import SleuthError
from sleuth.search import build_index, open_index
from sleuth.search.dense_shards import (
    ShardedDenseEngine,
    build_shards,
    local_fan_out,
    merge,
)
from sleuth.search.updates import apply_update
from sleuth.types import Document

DOCS = 240


@pytest.fixture(scope="module")
def hotpot() -> list[Document]:
    return list(load_documents("hotpotqa-1100"))[: DOCS + 10]


@pytest.fixture(scope="module")
def dense_index(hotpot: list[Document], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "dense"
    return build_index(hotpot[:DOCS], out, engine="dense")


def _questions(hotpot: list[Document]) -> list[str]:
    return [d.title for d in hotpot[:24:3]] + [
        "which band released the album",
        "an American film director born in 1970",
    ]


def _same(single, sharded, queries: list[str], k: int) -> None:
    want = [[(h.id, h.score, h.rank) for h in hits] for hits in single.search_batch(queries, k)]
    got = [[(h.id, h.score, h.rank) for h in hits] for hits in sharded.search_batch(queries, k)]
    assert got == want
    one = [(h.id, h.score) for h in sharded.search(queries[0], k)]
    assert one == [(h.id, h.score) for h in single.search(queries[0], k)]


@pytest.mark.parametrize("count", [2, 4])
def test_shards_merge_to_the_single_index_top_k(dense_index: Path, hotpot, count: int) -> None:
    shards = build_shards(dense_index, count)
    files = sorted(p.name for p in shards.folder.iterdir())
    assert len([f for f in files if f.endswith(".faiss")]) == count and "shards.json" in files
    sizes = [len(np.load(shards.rows_file(n))) for n in range(count)]
    assert sum(sizes) == DOCS and max(sizes) - min(sizes) <= 1  # each loads only its part
    assert build_shards(dense_index, count).folder == shards.folder  # built once, then reused
    sharded = ShardedDenseEngine(dense_index, local_fan_out(shards), metric=shards.metric)
    single = open_index(dense_index)
    for k in (1, 10, 100, DOCS + 5):
        _same(single, sharded, _questions(hotpot), k)


def test_sq8_and_an_updated_index_shard_exactly(hotpot, tmp_path: Path) -> None:
    index = build_index(hotpot[:60], tmp_path / "sq8", engine="dense", dense_index="sq8")
    apply_update(index, hotpot[60:64], [hotpot[3].id, hotpot[7].id])  # rows 3, 7 masked
    shards = build_shards(index, 3)
    assert shards.folder.name == "g000001-s3" and shards.documents == 62
    rows = np.concatenate([np.load(shards.rows_file(n)) for n in range(3)])
    assert 3 not in rows and 7 not in rows and len(rows) == 62
    sharded = ShardedDenseEngine(index, local_fan_out(shards), metric=shards.metric)
    single = open_index(index)
    queries = [*_questions(hotpot), hotpot[3].title, hotpot[61].title]
    for k in (5, 62):
        _same(single, sharded, queries, k)
    assert hotpot[3].id not in {h.id for h in sharded.search(hotpot[3].title, 62)}


def test_merge_orders_ties_as_faiss_does() -> None:
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8)).astype("float32")
    vectors[[5, 17, 33, 38]] = vectors[17]  # four bit-identical vectors, one per shard or two
    query = vectors[17:18] * 3  # the four tie for the best score (ranks 1-4 of 6)
    for metric, name in ((faiss.METRIC_INNER_PRODUCT, "ip"), (faiss.METRIC_L2, "l2")):
        whole = faiss.IndexFlat(8, metric)
        whole.add(vectors)
        want_d, want_rows = whole.search(query, 6)
        parts = []
        for rows in np.array_split(np.arange(40), 3):
            shard = faiss.IndexFlat(8, metric)
            shard.add(vectors[rows])
            d, local = shard.search(query, 6)
            parts.append((d, rows[local]))
        ((rows, scores),) = merge(parts, 6, name)
        assert sorted(rows[:4]) == [5, 17, 33, 38]
        sign = -1 if name == "l2" else 1
        assert rows == want_rows[0].tolist()
        assert scores == (sign * want_d[0]).tolist()


def test_refusals_name_the_reason(hotpot, tmp_path: Path) -> None:
    bm25 = build_index(hotpot[:20], tmp_path / "bm25")
    with pytest.raises(SleuthError, match=r"document frequency.*--replicas"):
        build_shards(bm25, 2)
    hnsw = build_index(hotpot[:20], tmp_path / "hnsw", engine="dense", dense_index="hnsw")
    with pytest.raises(SleuthError, match=r"flat or SQ8.*IndexHNSW"):
        build_shards(hnsw, 2)
    with pytest.raises(SleuthError, match=r"2\.\.64"):
        build_shards(hnsw, 1)
    with pytest.raises(SleuthError, match="more than the index's 20 documents"):
        build_shards(hnsw, 30)
