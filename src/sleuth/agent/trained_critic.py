"""A critic trained on past runs (``sleuth train critic``): a linear model over gold-free
features of a state (``sleuth.agent.critic_state``), scored on the CPU with no model call.

Features: a few counts (steps, searches, documents, errors, answered), how close the gathered
documents are to the question under the packaged sentence encoder (best, mean of the best two,
mean), and the question's embedding times the documents' mean embedding (which dimensions they
agree on). The model: standardisation then ridge regression, its prediction clipped to [0, 1].

The saved critic is a folder of two JSON files, never a pickle: ``manifest.json`` (format,
encoder, feature names, label, training runs with their checksums, held-out metrics, the
weights file's checksum) and ``weights.json`` (mean, scale, coefficients, intercept). Loading
reads numbers and rebuilds the model, so a critic file from anywhere cannot run code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sleuth.agent.critic_state import CriticState, state_of_episode
from sleuth.errors import SleuthError

if TYPE_CHECKING:
    from sleuth.agent.loop import Episode
    from sleuth.search.encoder import Encoder

__all__ = [
    "FORMAT",
    "CriticFormatError",
    "CriticModel",
    "StateFeatures",
    "TrainedCritic",
    "feature_names",
    "load_critic",
    "save_critic",
]

FORMAT, VERSION = "sleuth-critic", 1
MANIFEST, WEIGHTS = "manifest.json", "weights.json"
ENCODER, ENCODER_BACKEND = "packaged:all-MiniLM-L6-v2", "onnx"
COUNTS = ("steps", "searches", "documents", "errors", "answered")
SIMILARITIES = ("similarity_max", "similarity_top2", "similarity_mean")
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle's protocol byte, a zip (skops, joblib, torch)


class CriticFormatError(SleuthError):
    """A critic folder that is not one Sleuth wrote (or was changed since)."""


def feature_names(dim: int) -> list[str]:
    return [*COUNTS, *SIMILARITIES, *(f"agreement_{i}" for i in range(dim))]


class StateFeatures:
    """Turns states into feature rows; embeddings of texts seen before are reused (the states
    of one question share most of their documents)."""

    def __init__(self, encoder: Encoder | None = None) -> None:
        if encoder is None:
            from sleuth.search.encoder import Encoder

            encoder = Encoder(ENCODER, ENCODER_BACKEND)
        self.encoder = encoder
        self.dim = encoder.dim
        self.cache: dict[str, np.ndarray] = {}

    def _embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing), strict=True):
                self.cache[text] = vector
        return {text: self.cache[text] for text in texts}

    def rows(self, states: Sequence[CriticState]) -> np.ndarray:
        """One feature row per state, in ``feature_names`` order."""
        texts = [s.question for s in states] + [t for s in states for t in s.document_texts()]
        vectors = self._embed(texts)
        out = np.zeros((len(states), len(COUNTS) + len(SIMILARITIES) + self.dim), np.float64)
        for row, state in enumerate(states):
            out[row, : len(COUNTS)] = [
                state.steps,
                state.searches,
                len(state.documents),
                state.errors,
                float(state.answered),
            ]
            docs = [vectors[t] for t in state.document_texts()]
            if docs:
                question = vectors[state.question].astype(np.float64)
                matrix = np.asarray(docs, dtype=np.float64)
                sims = np.sort(matrix @ question)[::-1]
                start = len(COUNTS)
                out[row, start : start + 3] = [sims[0], sims[:2].mean(), sims.mean()]
                out[row, start + 3 :] = question * matrix.mean(axis=0)
        return out


@dataclass(frozen=True)
class CriticModel:
    """Standardise, then a linear model; the score is its prediction clipped to [0, 1]."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, rows: np.ndarray) -> np.ndarray:
        raw = ((rows - self.mean) / self.scale) @ self.coef + self.intercept
        return np.clip(raw, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_critic(folder: Path, model: CriticModel, manifest: dict[str, Any]) -> Path:
    """Write the critic folder atomically: both files go into a new folder beside ``folder``,
    which then takes its place (an existing critic folder is replaced whole; any other existing
    path is refused, so nothing else is overwritten)."""
    folder = Path(folder)
    if folder.exists() and not (folder / MANIFEST).is_file():
        raise SleuthError(f"{folder} exists and is not a critic folder; choose a new --out")
    weights = json.dumps(model.to_dict()).encode("utf-8")
    full = {
        **manifest,
        "format": FORMAT,
        "version": VERSION,
        "weights": WEIGHTS,
        "weights_sha256": _sha256(weights),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        for name, data in ((WEIGHTS, weights), (MANIFEST, _json_bytes(full))):
            with (tmp / name).open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _read_json(path: Path, what: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CriticFormatError(f"cannot read the critic's {what} {path}: {exc.strerror}") from None
    if data.startswith(PICKLE_MAGIC):
        raise CriticFormatError(
            f"{path} looks like a pickle or zip archive; Sleuth never unpickles a critic (it "
            "could run any code): train one with `sleuth train critic`"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CriticFormatError(f"{path} is not the critic's JSON {what}: {exc}") from None


def _vector(weights: dict[str, Any], name: str, size: int, path: Path) -> np.ndarray:
    values = weights.get(name)
    if not isinstance(values, list) or len(values) != size:
        raise CriticFormatError(f"{path}: {name} must be a list of {size} numbers")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise CriticFormatError(f"{path}: {name} holds something other than numbers")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise CriticFormatError(f"{path}: {name} holds a number that is not finite")
    return array


def load_critic(path: str | Path) -> tuple[CriticModel, dict[str, Any]]:
    """The model and manifest of the critic folder ``path`` (or its manifest file), checked:
    its format and version, the weights file's checksum, every weight a finite number of the
    right count. ``CriticFormatError`` names what is wrong."""
    folder = Path(path)
    if folder.is_file() and folder.name == MANIFEST:
        folder = folder.parent
    if folder.is_file():
        _read_json(folder, "manifest")  # a pickle is named as one
        raise CriticFormatError(f"{folder} is a file; --critic takes a critic folder")
    if not (folder / MANIFEST).is_file():
        raise CriticFormatError(
            f"{folder} is not a critic folder (no {MANIFEST}); train one with `sleuth train "
            "critic`, or name the model as judge with --critic judge"
        )
    manifest = _read_json(folder / MANIFEST, "manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CriticFormatError(f"{folder / MANIFEST} is not a Sleuth critic manifest")
    if manifest.get("version") != VERSION:
        raise CriticFormatError(
            f"{folder}: critic format version {manifest.get('version')!r}; this Sleuth reads "
            f"version {VERSION}"
        )
    weights_path = folder / WEIGHTS
    try:
        raw = weights_path.read_bytes()
    except OSError as exc:
        raise CriticFormatError(f"cannot read {weights_path}: {exc.strerror}") from None
    if _sha256(raw) != manifest.get("weights_sha256"):
        raise CriticFormatError(
            f"{weights_path} does not match its manifest's checksum: the file was changed or "
            "damaged; train the critic again"
        )
    weights = _read_json(weights_path, "weights")
    features = manifest.get("features")
    if not isinstance(weights, dict) or not isinstance(features, list):
        raise CriticFormatError(f"{folder}: weights or feature list missing")
    size = len(features)
    model = CriticModel(
        _vector(weights, "mean", size, weights_path),
        _vector(weights, "scale", size, weights_path),
        _vector(weights, "coef", size, weights_path),
        float(_vector({"v": [weights.get("intercept")]}, "v", 1, weights_path)[0]),
    )
    if np.any(model.scale <= 0):
        raise CriticFormatError(f"{weights_path}: scale must be positive")
    encoder = manifest.get("encoder") or {}
    if encoder.get("name") != ENCODER:
        raise CriticFormatError(
            f"{folder}: trained with encoder {encoder.get('name')!r}, not {ENCODER!r}"
        )
    return model, manifest


class TrainedCritic:
    """The ``Critic`` protocol over a saved critic: a state's features, the linear model's
    prediction. It calls no model (``model_calls_per_score`` 0: a tree search promises no
    budget for it and ``critic_calls`` stays 0); ``scores`` counts the states it scored."""

    model_calls_per_score = 0

    def __init__(
        self, model: CriticModel, manifest: dict[str, Any], features: StateFeatures
    ) -> None:
        if len(feature_names(features.dim)) != len(model.coef) or manifest.get(
            "features"
        ) != feature_names(features.dim):
            raise CriticFormatError(
                "the critic's features are not the ones this Sleuth computes; train it again"
            )
        self.model, self.manifest, self.features = model, manifest, features
        self.scores = 0

    @classmethod
    def load(cls, path: str | Path, features: StateFeatures | None = None) -> TrainedCritic:
        model, manifest = load_critic(path)
        return cls(model, manifest, features or StateFeatures())

    def score_states(self, states: Sequence[CriticState]) -> np.ndarray:
        return self.model.predict(self.features.rows(states))

    async def score(self, episode: Episode) -> float:
        state = state_of_episode(episode)
        self.scores += 1
        value = await asyncio.to_thread(self.score_states, [state])
        score = float(value[0])
        return score if math.isfinite(score) else 0.0
