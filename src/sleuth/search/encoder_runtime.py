"""Run an exported encoder with onnxruntime or OpenVINO: no torch, no transformers at query time.

Texts are tokenised with the model's own Rust tokenizer (``tokenizers``), sorted by length so a
batch carries little padding, run through the graph (which already pools), and L2-normalised.
Importing this module is light; the runtimes are imported when a runner is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import SleuthError

TOKENS_PER_BATCH = 8192  # padded tokens per forward pass: bounds memory, keeps batches efficient
MAX_BATCH = 256


def _threads() -> int:
    """Intra-op threads: ``SLEUTH_ENCODER_THREADS`` or the CPUs this process may use."""
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

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            longest = int(lengths[order[min(len(order), start + MAX_BATCH) - 1]])
            size = max(1, min(MAX_BATCH, TOKENS_PER_BATCH // max(1, longest)))
            rows = order[start : start + size]
            width = int(lengths[rows[-1]])
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                tokens = encodings[row].ids
                ids[i, : len(tokens)] = tokens
                mask[i, : len(tokens)] = 1
            out[rows] = self._forward(ids, mask)
            start += size
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
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
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
        config = {
            "INFERENCE_NUM_THREADS": _threads(),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        compiled = ov.Core().compile_model(str(folder / file_name), "CPU", config)
        self._request = compiled.create_infer_request()

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        result = self._request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.array(result[0], dtype=np.float32, copy=True)
