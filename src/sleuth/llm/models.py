"""Where a model spec points: the packaged default, a GGUF file, a named model, an HF id or folder.

Every backend (OpenVINO, transformers, training) resolves specs here, so ``--model X`` means the
same weights everywhere. A GGUF file is converted once into a cached plain HF folder; a LoRA
adapter folder is merged into its base once, likewise (``sleuth.llm.adapters``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sleuth.errors import SleuthError
from sleuth.llm.adapters import is_adapter_folder, merged_model_dir

# LoRA adapters shipped in the package (src/sleuth/data/adapters/NAME), usable as model names.
SHIPPED_ADAPTERS = ("smollm2-135m-primed",)


def is_packaged(spec: str | Path | None) -> bool:
    return spec in (None, "", "packaged")


def shipped_adapter_dir(name: str) -> Path:
    """The folder of a shipped adapter (package data; merged into its base like any adapter)."""
    if name not in SHIPPED_ADAPTERS:
        raise SleuthError(f"no shipped adapter {name!r}; choose from {', '.join(SHIPPED_ADAPTERS)}")
    return Path(__file__).resolve().parents[1] / "data" / "adapters" / name


def resolve_hf_folder(spec: str | Path | None) -> tuple[str, str]:
    """``(folder or HF id, display name)`` for ``spec`` (None/"packaged" = SmolLM2-135M;
    "smollm2-135m-primed" = it with the shipped priming adapter merged in)."""
    from sleuth.llm.packaged import PACKAGED_NAME, gguf_to_hf, packaged_model_dir
    from sleuth.search.cache import cache_dir

    if is_packaged(spec):
        return str(packaged_model_dir()), PACKAGED_NAME
    text = str(spec)
    from sleuth.llm.named import NAMED_MODELS, named_model_gguf

    if text in SHIPPED_ADAPTERS:
        return str(merged_model_dir(shipped_adapter_dir(text))), text
    if text in NAMED_MODELS:
        gguf = named_model_gguf(text)
        return str(gguf_to_hf(gguf, cache_dir() / "models" / f"{text}-hf")), text
    if (folder := Path(text).expanduser()).is_dir() and is_adapter_folder(folder):
        return str(merged_model_dir(folder)), folder.resolve().name
    if text.endswith(".gguf"):
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise SleuthError(f"{path}: no such GGUF file")
        digest = hashlib.sha1(f"{path}:{path.stat().st_size}".encode()).hexdigest()[:10]
        return str(gguf_to_hf(path, cache_dir() / "models" / f"{path.stem}-{digest}")), path.stem
    return text, text
