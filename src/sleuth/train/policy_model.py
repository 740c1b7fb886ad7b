"""Load the model to be trained: the packaged SmolLM2 by default, any HF id, folder or GGUF file.

Training needs plain float weights: a GGUF file is converted once into a cached HF folder (the
same conversion the inference backend uses), never trained through the GGUF quantizer.
"""

from __future__ import annotations

from typing import Any

from sleuth.errors import SleuthError


def resolve_model_folder(spec: str | None) -> tuple[str, str]:
    """``(folder or HF id, display name)`` for ``spec`` (None/"packaged" = SmolLM2-135M)."""
    from sleuth.llm.models import resolve_hf_folder

    return resolve_hf_folder(spec)


def load_trainable(spec: str | None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` ready for TRL: float32 on CPU, pad token set, left padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sleuth.llm.quiet import no_progress_bars

    folder, name = resolve_model_folder(spec)
    try:
        with no_progress_bars():  # the trainers print their own progress
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder)
    except OSError as exc:
        raise SleuthError(f"cannot load model {spec or name!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer, name
