"""``--rerank disk``: a quantised index's candidates re-scored exactly from float32 rows on disk.

Real MiniLM vectors of 400 packaged HotpotQA passages (``"passage: "`` before each, as e5's
users encode theirs), indexed by faiss itself; queries are real questions. IVF-PQ with few
bytes a vector loses recall against exact search; re-scoring its candidates from the flat file
must bring the exact top 10 back, reading only the candidate rows.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from searchr1_layout import DATA, E5_LIKE, write_searchr1_corpus

from sleuth.errors import SleuthError
from sleuth.search import open_index, read_manifest
from sleuth.search.disk_rerank import RERANK_FILE, DiskVectors
from sleuth.search.encoder import Encoder
from sleuth.search.flat_file import FlatFileWriter
from sleuth.search.index_import import ImportOptions, import_index
from sleuth.types import Document

faiss = pytest.importorskip("faiss")

PASSAGES, QUESTIONS, K = 400, 40, 10
# 48 sub-quantizers of 4 bits (24 bytes a vector; 400 rows cannot train 8-bit codes): a lossy
# first stage whose top 10 holds about half of the exact top 10, its top 50 about 90 %.
PQ = {"nlist": 4, "pq_m": 48, "nprobe": 4}


def _options(**extra: object) -> ImportOptions:
    return ImportOptions(**{**E5_LIKE, **extra})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("rerank")
    corpus, lines = write_searchr1_corpus(folder, PASSAGES)
    encoder = Encoder(None)
    vectors = encoder.encode([f"passage: {json.loads(line)['contents']}" for line in lines])
    with (DATA / "queries.jsonl").open(encoding="utf-8") as handle:
        questions = [
            json.loads(line)["text"] for _, line in zip(range(QUESTIONS), handle, strict=False)
        ]
    queries = encoder.encode([f"query: {q}" for q in questions])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(vectors)
    sq8 = faiss.IndexScalarQuantizer(
        vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sq8.train(vectors)
    sq8.add(vectors)
    paths = {}
    for name, index in (("flat", flat), ("hnsw", hnsw), ("sq8", sq8)):
        paths[name] = folder / f"e5_{name}.index"
        faiss.write_index(index, str(paths[name]))
    return {
        "folder": folder,
        "corpus": corpus,
        "vectors": vectors,
        "questions": questions,
        "queries": queries,
        "truth": flat.search(queries, K)[1],
        "faiss": paths,
    }


def _recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def test_rescoring_brings_back_the_exact_top_k_reading_only_candidate_rows(
    source: dict, tmp_path: Path
):
    vectors, queries, truth = source["vectors"], source["queries"], source["truth"]
    d = vectors.shape[1]
    pq = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, 4, 48, 4, faiss.METRIC_INNER_PRODUCT)
    pq.train(vectors)
    pq.add(vectors)
    pq.nprobe = 4
    alone = pq.search(queries, K)[1]
    _, candidates = pq.search(queries, K * 5)
    path = tmp_path / "flat.faiss"
    with FlatFileWriter(path, d, len(vectors)) as writer:  # streamed in two blocks
        writer.write(vectors[:150])
        writer.write(vectors[150:])
    assert np.array_equal(faiss.read_index(str(path)).reconstruct_n(0, len(vectors)), vectors)
    # every row no query asks for is made unreadable: a read of one would show as NaN
    wanted = np.unique(candidates[candidates >= 0])
    poisoned = vectors.copy()
    poisoned[np.setdiff1d(np.arange(len(vectors)), wanted)] = np.nan
    with FlatFileWriter(tmp_path / "poisoned.faiss", d, len(vectors)) as writer:
        writer.write(poisoned)
    exact = DiskVectors(tmp_path / "poisoned.faiss")
    ranked = exact.rescore(queries, candidates, K)
    assert exact.rows_read == len(wanted) < len(vectors)
    for (rows, scores), query in zip(ranked, queries, strict=True):
        np.testing.assert_allclose(scores, vectors[rows] @ query, rtol=1e-5)
        assert scores == sorted(scores, reverse=True)
    pq_recall = _recall(alone.tolist(), truth)
    reranked = _recall([rows for rows, _ in ranked], truth)
    covered = _recall([c.tolist() for c in candidates], truth)  # exact top 10 among candidates
    assert pq_recall < 0.7  # the first stage alone loses a good part of the exact top 10
    assert reranked == pytest.approx(covered)  # every exact neighbour among them comes back
    assert reranked >= 0.85 and reranked > pq_recall + 0.25
    # a candidate the index ranked outside its top k but exactly in the top k comes back
    in_candidates = [set(t) <= set(c) for t, c in zip(truth, candidates, strict=True)]
    for (rows, _), t, full in zip(ranked, truth, in_candidates, strict=True):
        if full:
            assert rows == t.tolist()


def test_import_with_rerank_disk_links_the_source_and_searches_exactly(
    source: dict, tmp_path: Path
):
    plain = import_index(
        source["corpus"], source["faiss"]["flat"], tmp_path / "pq", _options(to="ivf-pq", **PQ)
    )
    out = import_index(
        source["corpus"],
        source["faiss"]["flat"],
        tmp_path / "pq-rerank",
        _options(to="ivf-pq", rerank="disk", rerank_factor=5, **PQ),
    )
    manifest = read_manifest(out)
    assert manifest["params"]["rerank"] == "disk" and manifest["params"]["rerank_factor"] == 5
    kept = manifest["imported"]["vectors"]["rerank"]
    assert kept["file"] == RERANK_FILE and kept["placed"] == "hardlink"
    assert (out / "dense" / RERANK_FILE).stat().st_ino == source["faiss"]["flat"].stat().st_ino
    engine = open_index(out)
    found = [[int(h.id) for h in hits] for hits in engine.search_batch(source["questions"], K)]
    without = [
        [int(h.id) for h in hits] for hits in open_index(plain).search_batch(source["questions"], K)
    ]
    assert _recall(found, source["truth"]) >= 0.85 > _recall(without, source["truth"]) + 0.25
    hits = engine.search(source["questions"][0], 3)
    exact = source["vectors"][[int(h.id) for h in hits]] @ source["queries"][0]
    np.testing.assert_allclose([h.score for h in hits], exact, rtol=1e-5)  # exact scores
    assert 0 < engine.exact.rows_read <= (len(source["questions"]) + 1) * K * 5


def test_a_non_flat_source_has_its_rows_written_beside(source: dict, tmp_path: Path):
    out = import_index(
        source["corpus"],
        source["faiss"]["hnsw"],
        tmp_path / "idx",
        _options(to="sq8", rerank="disk", rerank_factor=2),
    )
    assert read_manifest(out)["imported"]["vectors"]["rerank"]["placed"] == "written"
    kept = faiss.read_index(str(out / "dense" / RERANK_FILE))
    assert np.array_equal(kept.reconstruct_n(0, PASSAGES), source["vectors"])


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("flat", {"rerank": "disk"}, "--to sq8 or --to ivf-pq"),
        ("flat", {"rerank": "disk", "to": "flat"}, "--to sq8 or --to ivf-pq"),
        ("flat", {"rerank": "ram", "to": "sq8"}, "unknown --rerank 'ram'"),
        ("flat", {"rerank_factor": 3, "to": "sq8"}, "only with --rerank disk"),
        ("sq8", {"rerank": "disk", "to": "ivf-pq"}, "already quantised (sq8)"),
    ],
)
def test_a_rerank_that_cannot_work_is_refused_by_name(
    source: dict, tmp_path: Path, kind: str, options: dict, message: str
):
    with pytest.raises(SleuthError, match=re.escape(message)):
        import_index(source["corpus"], source["faiss"][kind], tmp_path / "idx", _options(**options))
    assert not (tmp_path / "idx").exists()


def test_a_missing_rerank_file_is_named_and_an_update_refused(source: dict, tmp_path: Path):
    from sleuth.search.updates import apply_update

    out = import_index(
        source["corpus"],
        source["faiss"]["flat"],
        tmp_path / "idx",
        _options(to="sq8", rerank="disk", link=False),  # a copy: moving it away is safe
    )
    with pytest.raises(SleuthError, match="cannot be added"):
        apply_update(out, [Document(id="new", title="New", text="a new passage")])
    shutil.move(out / "dense" / RERANK_FILE, tmp_path / "elsewhere")
    with pytest.raises(SleuthError, match=r"rerank\.faiss: the full-precision vectors"):
        open_index(out)


def test_the_command_imports_with_rerank_disk(source: dict, tmp_path: Path):
    from serve_process import sleuth

    out = tmp_path / "idx"
    corpus, flat = str(source["corpus"]), str(source["faiss"]["flat"])
    done = sleuth(
        "index", "import", "--corpus", corpus, "--faiss", flat, "--encoder", "packaged",
        "--query-prefix", "query: ", "--passage-prefix", "passage: ", "--to", "ivf-pq",
        "--nlist", "4", "--pq-m", "48", "--nprobe", "4", "--rerank", "disk",
        "--rerank-factor", "5", "--no-verify", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "float32 rows kept for re-scoring (hardlink)" in done.stderr
    found = sleuth("search", str(out), source["questions"][0], "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    exact = source["vectors"][[int(h["id"]) for h in hits]] @ source["queries"][0]
    np.testing.assert_allclose([h["score"] for h in hits], exact, rtol=1e-4)
    bad = sleuth(
        "index", "import", "--corpus", corpus, "--faiss", flat, "--encoder", "packaged",
        "--rerank", "disk", "--out", str(tmp_path / "bad"),
    )  # fmt: skip
    assert bad.returncode == 2 and "--to sq8 or --to ivf-pq" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
