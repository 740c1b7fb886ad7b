"""The dense encoder's backends: same vectors as torch, loaded once, batched across threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from sleuth.corpus import load_documents, load_qrels, load_queries
from sleuth.errors import SleuthError
from sleuth.search import build_index, open_index
from sleuth.search import encoder as encoder_module
from sleuth.search.batching import MicroBatcher
from sleuth.search.encoder import Encoder, resolve_encoder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def passages() -> list[str]:
    """Real bundled passages of very different lengths: HotpotQA paragraphs and Cranfield."""
    hotpot = [d for _, d in zip(range(48), load_documents("hotpotqa-1100"), strict=False)]
    cran = [d for _, d in zip(range(16), load_documents("cranfield"), strict=False)]
    return [f"{d.title}\n{d.text}" for d in hotpot + cran] + ["x", "Who founded it?"]


@pytest.fixture(scope="module")
def torch_vectors(passages) -> np.ndarray:
    return Encoder(None, "torch").encode(passages)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fast_backend_matches_torch(backend, passages, torch_vectors):
    vectors = Encoder(None, backend).encode(passages)
    assert vectors.shape == torch_vectors.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * torch_vectors).sum(axis=1)
    assert cosine.min() >= 0.99
    assert cosine.mean() >= 0.9999  # fp32 either way: the same vectors up to rounding


def test_int8_backend_is_close_but_not_identical(passages, torch_vectors):
    cosine = (Encoder(None, "onnx-int8").encode(passages) * torch_vectors).sum(axis=1)
    assert cosine.mean() >= 0.97
    assert cosine.mean() < 0.9999  # really quantised, not the fp32 graph under another name


def test_dense_index_built_with_onnx_retrieves(tmp_path):
    queries, qrels = load_queries("hotpotqa-1100"), load_qrels("hotpotqa-1100")
    chosen = list(queries)[:12]
    gold = {doc_id for q in chosen for doc_id in qrels[q]}
    docs = [d for i, d in enumerate(load_documents("hotpotqa-1100")) if d.id in gold or i < 100]
    path = build_index(docs, tmp_path / "dense", engine="dense", encoder_backend="onnx")
    engine = open_index(path)
    assert engine.manifest["params"]["encoder_backend"] == "onnx"
    assert engine.encoder.backend == "onnx"
    texts = [queries[q] for q in chosen]
    results = engine.search_batch(texts, 5)
    pairs = zip(chosen, results, strict=True)
    found = [bool(set(qrels[q]) & {h.id for h in hits}) for q, hits in pairs]
    assert sum(found) >= 9
    # fp32 backends are interchangeable: torch queries on the onnx-built index rank alike
    torch_engine = open_index(path, encoder_backend="torch")
    assert torch_engine.encoder.backend == "torch"
    for fast, slow in zip(results, torch_engine.search_batch(texts, 5), strict=True):
        assert [h.id for h in fast][:3] == [h.id for h in slow][:3]


def test_int8_index_gets_int8_queries(tmp_path):
    docs = [d for _, d in zip(range(30), load_documents("cranfield"), strict=False)]
    path = build_index(docs, tmp_path / "int8", engine="dense", encoder_backend="onnx-int8")
    engine = open_index(path)
    assert engine.manifest["params"]["encoder_backend"] == "onnx-int8"
    assert engine.encoder.backend == "onnx-int8"
    assert engine.search(docs[3].text[:200], 1)[0].id == docs[3].id


def test_encoder_is_loaded_once_per_process(tmp_path):
    docs = [d for _, d in zip(range(20), load_documents("cranfield"), strict=False)]
    path = build_index(docs, tmp_path / "d", engine="dense")
    key = (resolve_encoder(None), "onnx")
    before = encoder_module.LOADS.get(key, 0)
    engines = [open_index(path) for _ in range(3)] + [open_index(path)]
    for engine in engines:
        engine.search("shock waves", 3)
    Encoder(None, "onnx").encode(["again"])
    assert encoder_module.LOADS[key] == max(before, 1)
    assert len({id(e.encoder._shared) for e in engines}) == 1


def test_cli_search_on_dense_index_does_not_import_torch(tmp_path):
    """Why `sleuth search` is fast now: the onnx path never imports torch or transformers."""
    docs = [d for _, d in zip(range(20), load_documents("cranfield"), strict=False)]
    path = build_index(docs, tmp_path / "d", engine="dense")
    code = (
        "import sys; from sleuth.search import open_index; "
        f"hits = open_index({str(path)!r}).search('shock waves', 3); "
        "assert len(hits) == 3; "
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_concurrent_encodes_are_merged_into_fewer_passes():
    encoder = Encoder(None, "onnx")
    queries = [f"question number {i} about aircraft wings" for i in range(32)]
    alone = {q: encoder.encode([q])[0] for q in queries}
    passes_before = encoder.forward_passes
    results: dict[str, np.ndarray] = {}
    barrier = threading.Barrier(len(queries))

    def worker(query: str) -> None:
        barrier.wait()
        results[query] = encoder.encode([query])[0]

    threads = [threading.Thread(target=worker, args=(q,)) for q in queries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == len(queries)
    assert encoder.forward_passes - passes_before < len(queries)  # batching happened
    for query in queries:  # and every caller got its own vector back
        assert float(results[query] @ alone[query]) > 0.9999


def test_micro_batcher_error_reaches_every_waiter():
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        if "bad" in texts:
            raise SleuthError("cannot encode 'bad'")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = MicroBatcher(encode)
    assert batcher(["a", "b"]).shape == (2, 2)
    with pytest.raises(SleuthError, match="cannot encode"):
        batcher(["bad"])
    assert batcher(["c"]).shape == (1, 2)  # not left busy after the error
    assert calls == [2, 1, 1]


def test_unknown_backend_is_refused():
    with pytest.raises(SleuthError, match="unknown encoder backend 'tensorrt'"):
        Encoder(None, "tensorrt")


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    from sleuth.search import encoder_export

    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path))

    def broken(model_path, out):
        (out / "model.onnx").write_bytes(b"half")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(encoder_export, "_export_onnx", broken)
    with pytest.raises(RuntimeError, match="killed mid-export"):
        encoder_export.ensure_export(resolve_encoder(None))
    assert list((tmp_path / "encoders").iterdir()) == []


def test_a_call_is_shared_by_single_threaded_passes_with_the_same_vectors(passages, monkeypatch):
    """The runner splits one call across worker threads (one thread per forward pass, no
    spinning intra-op pool): every text lands in exactly one pass, each pass within the
    padded-token budget, and the vectors equal a one-worker runner's."""
    from sleuth.search import encoder_export as export
    from sleuth.search import encoder_runtime as runtime

    folder = export.ensure_export(resolve_encoder(None))
    meta = export.read_meta(folder)
    passages = passages[::3]  # short and long, few enough to stay quick
    runners = {}
    for workers in ("1", "3"):
        monkeypatch.setenv("SLEUTH_ENCODER_THREADS", workers)
        runners[workers] = runtime.OnnxRunner(folder, export.ONNX_FP32, meta)
    assert (runners["1"].workers, runners["3"].workers) == (1, 3)
    lengths = np.array([len(runners["3"]._tokenizer.encode(p).ids) for p in passages])
    groups = runners["3"]._groups(lengths)
    assert len(groups) >= 3
    assert len(runners["3"]._groups(lengths[:2])) == 1  # too few texts to be worth splitting
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(passages)))
    for rows in groups:
        assert len(rows) * lengths[rows].max() <= max(runtime.TOKENS_PER_BATCH, lengths.max())
    assert len(runners["1"]._groups(lengths[:6])) == 1  # one worker: no needless split
    split, whole = runners["3"].encode(passages), runners["1"].encode(passages)
    assert float((split * whole).sum(axis=1).min()) > 0.9999


def test_export_cache_is_keyed_by_weights_not_install_path(tmp_path):
    """Every fresh virtual environment installs the packaged encoder at a new path; keying the
    export by path once filled CI's disk with one 281 MB copy per clone."""
    import shutil

    from sleuth.search.encoder_export import export_dir

    packaged = Path(resolve_encoder(None))
    copy = tmp_path / "elsewhere" / packaged.parent.name / "model"
    shutil.copytree(packaged, copy)
    assert export_dir(str(copy)) == export_dir(str(packaged))

    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a retrained model: same size, different weights
    weights.write_bytes(bytes(data))
    assert export_dir(str(copy)) != export_dir(str(packaged))
