"""Load the model to be trained: the packaged SmolLM2 by default, any HF id, folder or GGUF file.

Training needs plain float weights: a GGUF file is converted once into a cached HF folder (the
same conversion the inference backend uses), never trained through the GGUF quantizer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError


def resolve_model_folder(spec: str | None) -> tuple[str, str]:
    """``(folder or HF id, display name)`` for ``spec`` (None/"packaged" = SmolLM2-135M)."""
    from sleuth.llm.packaged import PACKAGED_NAME, packaged_model_dir, save_plain_hf
    from sleuth.search.cache import cache_dir

    if spec in (None, "", "packaged"):
        return str(packaged_model_dir()), PACKAGED_NAME
    assert spec is not None
    if spec.endswith(".gguf"):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise SleuthError(f"{path}: no such GGUF file")
        digest = hashlib.sha1(f"{path}:{path.stat().st_size}".encode()).hexdigest()[:10]
        out = cache_dir() / "models" / f"{path.stem}-{digest}"
        if not (out / "config.json").is_file():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            out.parent.mkdir(parents=True, exist_ok=True)
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
            save_plain_hf(model, tokenizer, out)
        return str(out), path.stem
    return spec, spec


def load_trainable(spec: str | None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` ready for TRL: float32 on CPU, pad token set, left padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = resolve_model_folder(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
    except OSError as exc:
        raise SleuthError(f"cannot load model {spec or name!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer, name
