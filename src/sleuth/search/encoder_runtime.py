"""Run an exported encoder with onnxruntime or OpenVINO: no torch, no transformers at query time.

Texts are tokenised with the model's own Rust tokenizer (``tokenizers``), sorted by length so a
batch carries little padding, run through the graph (which already pools), and L2-normalised.
Importing this module is light; the runtimes are imported when a runner is built.

Threads: each forward pass runs on ONE thread, and the sub-batches of a call run side by side
on ``workers`` threads (one per core). An intra-op pool of 2 spinning threads per pass was the
server's bottleneck: its threads meet at a barrier after every operator, so on a shared machine
one descheduled thread stalls the other, and spinning burns the CPU the server's own request
threads need. Measured here (16-query batches, same run): fp32 12.3 q/s with one thread per pass
against 9.0 with 2 spinning threads (74 vs 54 queries per CPU-second); int8 20.8 vs 12.6.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import SleuthError

TOKENS_PER_BATCH = 8192  # padded tokens per forward pass: bounds memory, keeps batches efficient
MAX_BATCH = 256
MIN_SPLIT = 4  # a call is split across workers only into sub-batches of at least this many texts


def _threads() -> int:
    """Worker threads (one pass each): ``SLEUTH_ENCODER_THREADS`` or the CPUs this process may
    use."""
    if os.environ.get("SLEUTH_ENCODER_THREADS"):
        return max(1, int(os.environ["SLEUTH_ENCODER_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _TokenizedRunner:
    """Shared part: tokenise, batch by length, normalise. Subclasses implement ``_forward``."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.dim = int(meta["dim"])
        self.max_length = int(meta["max_seq_length"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)
        self.workers = _threads()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sleuth-encoder")

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _groups(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row groups in length order, each one forward pass: at most TOKENS_PER_BATCH padded
        tokens, and at least ``workers`` groups when there are enough texts to share."""
        order = np.argsort(lengths, kind="stable")
        share = max(MIN_SPLIT, -(-len(order) // self.workers))  # ceil: one part per worker
        groups, start = [], 0
        while start < len(order):
            longest = int(lengths[order[min(len(order), start + MAX_BATCH) - 1]])
            size = max(1, min(MAX_BATCH, share, TOKENS_PER_BATCH // max(1, longest)))
            groups.append(order[start : start + size])
            start += size
        return groups

    def _run_group(self, encodings: list[Any], rows: np.ndarray) -> np.ndarray:
        width = max(len(encodings[row].ids) for row in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            tokens = encodings[row].ids
            ids[i, : len(tokens)] = tokens
            mask[i, : len(tokens)] = 1
        return self._forward(ids, mask)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        groups = self._groups(lengths)
        if len(groups) == 1:
            out[groups[0]] = self._run_group(encodings, groups[0])
        else:  # longest first, so the last pass to finish is a short one
            groups.reverse()
            passes = self._pool.map(lambda rows: self._run_group(encodings, rows), groups)
            for rows, vectors in zip(groups, passes, strict=True):
                out[rows] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out


class OnnxRunner(_TokenizedRunner):
    """onnxruntime on the CPU, all graph optimisations on."""

    def __init__(self, folder: Path, file_name: str, meta: dict[str, Any]) -> None:
        super().__init__(folder, meta)
        try:
            import onnxruntime as ort
        except ImportError:
            raise SleuthError("the onnx encoder backend needs: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # parallel across passes instead (module docstring)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(folder / file_name), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise SleuthError(f"cannot load encoder {folder / file_name}: {exc}") from None

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self._session.run(None, feeds)[0]


class OpenVinoRunner(_TokenizedRunner):
    """OpenVINO on the CPU (fp32 inference precision: vectors stay comparable with torch's)."""

    def __init__(self, folder: Path, file_name: str, meta: dict[str, Any]) -> None:
        super().__init__(folder, meta)
        try:
            import openvino as ov
        except ImportError:
            raise SleuthError("the openvino encoder backend needs: pip install openvino") from None
        config = {  # one single-threaded stream per worker, as the onnx runner does
            "NUM_STREAMS": self.workers,
            "INFERENCE_NUM_THREADS": self.workers,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._compiled = ov.Core().compile_model(str(folder / file_name), "CPU", config)
        self._local = threading.local()

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request is not thread-safe: one per calling thread
            request = self._local.request = self._compiled.create_infer_request()
        result = request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.array(result[0], dtype=np.float32, copy=True)
