"""The dense encoder's backends against today's torch encoder, every figure a ratio in one run.

1. Corpus encoding speed: the same passages encoded by each backend, in interleaved chunks
   (so load from other processes falls on all of them alike). Target: onnx >= 2.5x torch.
2. Quality: nDCG@10 on Cranfield and HotpotQA-1100 with each backend's corpus and query
   vectors (exact inner-product search), and the cross pairs (int8 corpus + fp32 queries,
   fp32 corpus + torch queries). Target: within 0.005 of torch.
3. Serving: dense ``/search/batch`` of ``sleuth serve`` (each backend) against the
   Search-R1-style baseline server (``bench/searchr1_baseline.py``), all up at once and loaded
   in turn (same requests, 8 clients, 16 queries each). Target: >= 5x.
4. ``sleuth search`` on a dense index, as a fresh process: wall time per call.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from bench.common import REPO, WORK

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino")
QUICK_BACKENDS = ("torch", "onnx", "onnx-int8")  # openvino's vectors are checked in tests
CHUNK = 256
QUALITY_TOLERANCE = 0.005
ROUNDS = 4  # serving: load rounds per server, interleaved


def passage(doc: Any) -> str:
    """What the index encodes for a document (as ``index_format`` does)."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def load_encoders(backends: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, float]]:
    """Each backend loaded once; the first onnx/openvino load may export (timed apart)."""
    from sleuth.search.encoder import Encoder

    encoders, seconds = {}, {}
    for backend in backends:
        started = time.perf_counter()
        encoders[backend] = Encoder(None, backend)
        seconds[backend] = round(time.perf_counter() - started, 1)
    return encoders, seconds


def encode_interleaved(
    encoders: dict[str, Any], texts: list[str], timings: dict[str, float]
) -> dict[str, np.ndarray]:
    """Every backend encodes every chunk; the order rotates per chunk."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in encoders}
    names = list(encoders)
    for n, start in enumerate(range(0, len(texts), CHUNK)):
        chunk = texts[start : start + CHUNK]
        for name in names[n % len(names) :] + names[: n % len(names)]:
            started = time.perf_counter()
            parts[name].append(encoders[name].encode(chunk))
            timings[name] += time.perf_counter() - started
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def ndcg(doc_vectors, query_vectors, doc_ids, query_ids, qrels) -> float:
    import faiss

    from sleuth.evaluate.retrieval import evaluate_run

    index = faiss.IndexFlatIP(doc_vectors.shape[1])
    index.add(doc_vectors)
    scores, rows = index.search(query_vectors, 100)
    run = {
        qid: {doc_ids[r]: float(s) for r, s in zip(rr, ss, strict=True) if r >= 0}
        for qid, rr, ss in zip(query_ids, rows, scores, strict=True)
    }
    return round(evaluate_run(run, qrels, ("nDCG@10",)).aggregate["nDCG@10"], 4)


def collection(name: str, quick: bool) -> tuple[list, dict[str, str], dict]:
    from sleuth.corpus import load_documents, load_qrels, load_queries

    docs = list(load_documents(name))
    queries, qrels = load_queries(name), load_qrels(name)
    queries = {q: t for q, t in queries.items() if q in qrels}
    if quick and name == "hotpotqa-1100":  # the first 1000 paragraphs and their questions
        docs = docs[:1000]
        present = {d.id for d in docs}
        queries = {q: t for q, t in queries.items() if set(qrels[q]) <= present}
    return docs, queries, qrels


def quality_and_speed(encoders: dict[str, Any], quick: bool) -> dict[str, Any]:
    timings = dict.fromkeys(encoders, 0.0)
    passages = 0
    out: dict[str, Any] = {}
    for name in ("cranfield", "hotpotqa-1100"):
        docs, queries, qrels = collection(name, quick)
        texts = [passage(d) for d in docs]
        passages += len(texts)
        doc_vectors = encode_interleaved(encoders, texts, timings)
        qids = list(queries)
        query_vectors = {b: e.encode([queries[q] for q in qids]) for b, e in encoders.items()}
        ids = [d.id for d in docs]
        scores = {b: ndcg(doc_vectors[b], query_vectors[b], ids, qids, qrels) for b in encoders}
        scores["onnx-int8 corpus + onnx queries"] = ndcg(
            doc_vectors["onnx-int8"], query_vectors["onnx"], ids, qids, qrels
        )
        scores["torch corpus + onnx queries"] = ndcg(
            doc_vectors["torch"], query_vectors["onnx"], ids, qids, qrels
        )
        cosine = {
            b: round(float((doc_vectors[b] * doc_vectors["torch"]).sum(1).min()), 5)
            for b in encoders
        }
        out[name] = {
            "documents": len(docs),
            "queries": len(qids),
            "ndcg@10": scores,
            "delta_vs_torch": {b: round(v - scores["torch"], 4) for b, v in scores.items()},
            "min_cosine_to_torch": cosine,
        }
    out["encoding"] = {
        "passages": passages,
        "seconds": {b: round(t, 1) for b, t in timings.items()},
        "passages_per_s": {b: round(passages / t, 1) for b, t in timings.items()},
        "speedup_vs_torch": {b: round(timings["torch"] / t, 2) for b, t in timings.items()},
    }
    return out


def serving(quick: bool) -> dict[str, Any]:
    """Every server up at once; the load visits them in turn, round after round, each round
    sending every server the same requests, so a change in the machine's other load falls on
    all of them alike (measured one after another, the ratios swung 3x between runs)."""
    from bench.serving import BATCH, free_port, start, stop
    from sleuth.corpus import load_documents, load_queries
    from sleuth.search import build_index

    documents, requests = (1000, 40) if quick else (3000, 120)
    root = WORK / "encoder-serving"
    shutil.rmtree(root, ignore_errors=True)
    docs = list(itertools.islice(load_documents("hotpotqa-1100"), documents))
    index = build_index(docs, root / "dense", engine="dense")
    questions = list(load_queries("hotpotqa-1100").values())
    batches = [questions[i * BATCH : (i + 1) * BATCH] for i in range(requests)]
    routes: dict[str, tuple[list[str], str, list[dict], int]] = {
        "baseline_retrieve_batch": (
            [sys.executable, "-m", "bench.searchr1_baseline", "--index", str(index)],
            "/retrieve",
            [{"queries": b, "topk": 3, "return_scores": True} for b in batches],
            BATCH,
        )
    }
    for backend in QUICK_BACKENDS if quick else BACKENDS:
        # --quiet: the access log would fill the undrained stderr pipe and stall the server
        args = [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--quiet"]
        args += ["--encoder-backend", backend]
        routes[f"sleuth_{backend}_search_batch"] = (
            args,
            "/search/batch",
            [{"queries": b, "k": 3} for b in batches],
            BATCH,
        )
    results: dict[str, Any] = {
        "documents": documents,
        "batch_size": BATCH,
        "rounds": ROUNDS,
        "method": "all servers up; rounds of the same requests to each in rotating order",
    }
    servers: dict[str, tuple[Any, int]] = {}
    try:
        for label, (args, *_rest) in routes.items():
            port = free_port()
            servers[label] = (start([*args, "--port", str(port)], port), port)
        results.update(rotate_load(routes, servers))
    finally:
        for process, _port in servers.values():
            stop(process)
    base = results["baseline_retrieve_batch"]["queries_per_s"]
    for key, value in results.items():
        if isinstance(value, dict) and key.startswith("sleuth_"):
            value["vs_baseline"] = round(value["queries_per_s"] / base, 2)
    cli = cli_search_seconds(index)
    shutil.rmtree(root, ignore_errors=True)
    return {"servers": results, "cli_search": cli}


def rotate_load(
    routes: dict[str, tuple[list[str], str, list[dict], int]],
    servers: dict[str, tuple[Any, int]],
) -> dict[str, dict[str, float]]:
    """ROUNDS rounds; in each, every server gets the same slice of requests (8 clients)."""
    from bench.serving import load

    seconds = dict.fromkeys(routes, 0.0)
    answered = dict.fromkeys(routes, 0)
    errors = dict.fromkeys(routes, 0)
    labels = list(routes)
    for n in range(ROUNDS):
        for label in labels[n % len(labels) :] + labels[: n % len(labels)]:
            _args, path, bodies, per_body = routes[label]
            part = bodies[n::ROUNDS]
            url = f"http://127.0.0.1:{servers[label][1]}{path}"
            started = time.perf_counter()
            measured = asyncio.run(load(url, part, per_body))
            seconds[label] += time.perf_counter() - started
            answered[label] += len(part) * per_body
            errors[label] += int(measured["errors"])
    return {
        label: {
            "queries_per_s": round(answered[label] / seconds[label], 1),
            "queries": answered[label],
            "errors": errors[label],
        }
        for label in routes
    }


def cli_search_seconds(index: Any, rounds: int = 2) -> dict[str, Any]:
    """Wall time of ``sleuth search`` as a fresh process (what a user waits for)."""
    times: dict[str, list[float]] = {b: [] for b in ("torch", "onnx")}
    for _ in range(rounds):
        for backend in times:
            command = [sys.executable, "-m", "sleuth.cli", "search", str(index), "who", "--json"]
            started = time.perf_counter()
            subprocess.run(
                [*command, "--encoder-backend", backend],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            times[backend].append(time.perf_counter() - started)
    medians = {b: round(statistics.median(t), 2) for b, t in times.items()}
    return {
        "median_seconds": medians,
        "speedup_vs_torch": round(medians["torch"] / medians["onnx"], 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    backends = QUICK_BACKENDS if quick else BACKENDS
    encoders, load_seconds = load_encoders(backends)
    quality = quality_and_speed(encoders, quick)
    del encoders
    served = serving(quick)
    speed = quality["encoding"]["speedup_vs_torch"]
    summary = [
        {
            "metric": f"corpus encoding {b} vs torch (target onnx >= 2.5x)",
            "value": f"{speed[b]:.2f}x",
            **({"pass": speed[b] >= 2.5} if b == "onnx" else {}),
        }
        for b in backends
        if b != "torch"
    ]
    for name in ("cranfield", "hotpotqa-1100"):
        for b, delta in quality[name]["delta_vs_torch"].items():
            if b == "torch":
                continue
            row = {"metric": f"{name} nDCG@10 {b} - torch", "value": delta}
            if b in ("onnx", "openvino"):
                row["pass"] = abs(delta) <= QUALITY_TOLERANCE
            summary.append(row)
    servers = served["servers"]
    for b in backends:
        ratio = servers[f"sleuth_{b}_search_batch"]["vs_baseline"]
        row = {"metric": f"dense /search/batch ({b}) vs Search-R1-style baseline", "value": ratio}
        if b == "onnx":
            row["metric"] += " (target >= 5x)"
            row["pass"] = ratio >= 5
        summary.append(row)
    summary.append(
        {
            "metric": "`sleuth search` on a dense index, torch s / onnx s",
            "value": f"{served['cli_search']['median_seconds']['torch']} / "
            f"{served['cli_search']['median_seconds']['onnx']}",
        }
    )
    return {
        "load_seconds": load_seconds,
        "quality": {k: v for k, v in quality.items() if k != "encoding"},
        "encoding": quality["encoding"],
        **served,
        "summary": summary,
    }
