"""Memory of ``sleuth index import`` on a Search-R1-shaped source much larger than a chunk.

A corpus of N ``{"id", "contents"}`` lines and a faiss ``IndexFlatIP`` of N vectors (written by
faiss, as Search-R1's ``e5_Flat.index`` is) are generated, then imported three ways, each in a
fresh process: kept (linked, memory-mapped), ``--to sq8`` and ``--to ivf-pq``. Reported per way:
the whole import's peak RSS (sampled), the peak the manifest records for the pass over the
vectors, the seconds, the output size; and recall@10 of the converted indexes against the flat
one.

Encoding N passages would take hours on 2 cores, so the vectors are synthesised on the real
MiniLM manifold as ``bench/scale.py`` does (mixes of two real HotpotQA passage vectors plus
noise); the corpus text is placeholder, so the sample check is off (``--no-verify``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.common import WORK, run_child

GENERATE = """
import json
import numpy as np, faiss
from sleuth.corpus import load_documents, load_queries
from sleuth.search.encoder import Encoder
rng = np.random.default_rng(0)
encoder = Encoder()
docs = list(load_documents("hotpotqa-1100"))[:{real}]
real = encoder.encode([f"passage: {{d.title}}\\n{{d.text}}" for d in docs])
questions = list(load_queries("hotpotqa-1100").values())[:{nq}]
np.save({queries!r}, encoder.encode([f"query: {{q}}" for q in questions]))
n, dim = {n}, real.shape[1]
index = faiss.IndexFlatIP(dim)
with open({corpus!r}, "w", encoding="utf-8") as out:
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a, b = rng.integers(0, len(real), m), rng.integers(0, len(real), m)
        w = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        block = w * real[a] + (1 - w) * real[b] + rng.normal(0, 0.02, (m, dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        index.add(block)
        for i in range(start, start + m):
            line = {{"id": str(i), "contents": f'"Passage {{i}}"\\nsynthetic passage number {{i}}'}}
            out.write(json.dumps(line) + "\\n")
faiss.write_index(index, {flat!r})
result = {{"vectors": n, "dim": dim, "real_passages_encoded": len(real)}}
"""

IMPORT = """
import json, threading, time
from sleuth.search.index_import import ImportOptions, import_index
# The import resets the kernel's high-water mark before its pass over the vectors (which is the
# peak it records), so the whole import's peak is sampled here every 20 ms instead.
peak, done = [0], threading.Event()
def sample():
    while not done.wait(0.02):
        rss = open("/proc/self/statm").read().split()[1]
        peak[0] = max(peak[0], int(rss) * 4096)
threading.Thread(target=sample, daemon=True).start()
options = ImportOptions(encoder="packaged", query_prefix="query: ", passage_prefix="passage: ",
                        to={to!r}, verify=False)
started = time.perf_counter()
out = import_index({corpus!r}, {flat!r}, {out!r}, options)
done.set()
manifest = json.loads((out / "manifest.json").read_text())
vectors = manifest["imported"]["vectors"]
result = {{"seconds": round(time.perf_counter() - started, 1),
          "import_peak_rss_mb_sampled": round(peak[0] / 2**20, 1),
          "vectors_pass_peak_rss_mb": round(vectors["peak_rss_bytes"] / 2**20, 1),
          "vectors_pass_peak_scope": vectors["peak_rss_scope"],
          "dense_bytes": (out / "dense" / "vectors.faiss").stat().st_size,
          "placed": vectors.get("placed", "converted")}}
"""

RECALL = """
import numpy as np, faiss
queries = np.load({queries!r})
flat = faiss.read_index({flat!r}, faiss.IO_FLAG_MMAP_IFC)
truth = flat.search(queries, 10)[1]
result = {{}}
for name, path, nprobe in {converted!r}:
    index = faiss.read_index(path)
    if nprobe:
        faiss.extract_index_ivf(index).nprobe = nprobe
    found = index.search(queries, 10)[1]
    result[name] = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
"""


def run(quick: bool = False) -> dict[str, Any]:
    work = WORK / "import"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = 200_000 if quick else 2_000_000
    paths = {
        "corpus": str(work / "wiki.jsonl"),
        "flat": str(work / "e5_Flat.index"),
        "queries": str(work / "queries.npy"),
    }
    result: dict[str, Any] = {
        "source": run_child(GENERATE.format(n=n, real=1000, nq=200, **paths)),
    }
    result["source"]["faiss_bytes"] = Path(paths["flat"]).stat().st_size
    converted = []
    for to in (None, "sq8", "ivf-pq"):
        name = to or "kept"
        out = str(work / f"idx-{name}")
        result[name] = run_child(IMPORT.format(to=to, out=out, **paths))
        if to:
            nprobe = json.loads((Path(out) / "manifest.json").read_text())["params"].get("nprobe")
            converted.append((name, f"{out}/dense/vectors.faiss", nprobe))
            result[name]["nprobe"] = nprobe
    recall = run_child(RECALL.format(converted=converted, **paths))
    for name, value in recall.items():
        if name != "peak_rss_mb":
            result[name]["recall@10_vs_flat"] = value
    source_mb = result["source"]["faiss_bytes"] / 2**20
    result["summary"] = [{"metric": "source flat index (MiB)", "value": round(source_mb)}]
    for name in ("kept", "sq8", "ivf-pq"):
        way = result[name]
        result["summary"].append(
            {
                "metric": f"import {name}: peak RSS MiB whole import (vectors pass), seconds",
                "value": f"{way['import_peak_rss_mb_sampled']} "
                f"({way['vectors_pass_peak_rss_mb']}), {way['seconds']}",
                "pass": way["vectors_pass_peak_rss_mb"] < source_mb,  # never loaded whole
            }
        )
    shutil.rmtree(work, ignore_errors=True)
    return result
