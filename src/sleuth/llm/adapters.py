"""LoRA adapter folders as models: merged into their base once, cached as a plain HF folder.

A primed model ships as a small adapter (``adapter_config.json`` + weights). Every backend
wants ordinary weights (OpenVINO exports them to IR, transformers loads them), so the adapter
is merged into its base model once per adapter content and published into the cache; later
loads reuse that folder. The base is named by the adapter (``base_model_name_or_path``, a model
spec such as ``packaged``) and resolved like any ``--model``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sleuth.errors import LLMError
from sleuth.llm.locks import publish_once

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file()


def adapter_digest(folder: Path) -> str:
    """A digest of the adapter's content (config + weights): a retrained adapter merges anew."""
    digest = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.name.startswith("adapter_")):
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


def base_spec(folder: Path) -> str:
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LLMError(f"{folder / ADAPTER_CONFIG}: unreadable adapter config ({exc})") from None
    spec = str(config.get("base_model_name_or_path") or "packaged")
    if Path(spec).expanduser().resolve() == folder.resolve():
        raise LLMError(f"{folder}: the adapter names itself as its base model")
    return spec


def merged_model_dir(folder: Path) -> Path:
    """The adapter at ``folder`` merged into its base: a cached plain HF folder, built once."""
    from sleuth.llm.models import resolve_hf_folder
    from sleuth.search.cache import cache_dir

    folder = folder.expanduser().resolve()
    spec = base_spec(folder)
    out = cache_dir() / "models" / "merged" / f"{folder.name[:40]}-{adapter_digest(folder)}"

    def build(tmp: Path) -> None:
        try:
            from peft import PeftModel
        except ImportError:
            raise LLMError("loading a LoRA adapter needs peft: pip install 'sleuth[llm]'") from None
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sleuth.progress import stderr

        base_folder, _ = resolve_hf_folder(spec)
        stderr.print(f"merging the adapter {folder.name} into {spec} (once) ...")
        tokenizer = AutoTokenizer.from_pretrained(base_folder)
        base = AutoModelForCausalLM.from_pretrained(base_folder)
        try:
            merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise LLMError(f"cannot apply the adapter {folder} to {spec}: {exc}") from None
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    out.parent.mkdir(parents=True, exist_ok=True)
    return publish_once(out, build, lambda path: (path / "config.json").is_file())
