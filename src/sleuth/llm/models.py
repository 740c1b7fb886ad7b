"""Where a model spec points: the packaged default, a GGUF file, a named model, an HF id or folder.

Every backend (OpenVINO, transformers, training) resolves specs here, so ``--model X`` means the
same weights everywhere. A GGUF file is converted once into a cached plain HF folder; a LoRA
adapter folder is merged into its base once, likewise.

A LoRA adapter folder is a model: its base (``base_model_name_or_path``, itself a model spec such
as ``packaged``) is resolved here like any ``--model``, and the merge cached as a plain HF folder
that every backend loads. That recursion lives in this one module.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sleuth.errors import LLMError, SleuthError
from sleuth.llm.locks import publish_once
from sleuth.paths import cache_dir

# LoRA adapters shipped in the package (src/sleuth/data/adapters/NAME), usable as model names.
SHIPPED_ADAPTERS = ("smollm2-135m-primed", "smollm2-135m-searcher")
ADAPTER_CONFIG_NAME = "adapter_config.json"


def is_packaged(spec: str | Path | None) -> bool:
    return spec in (None, "", "packaged")


def shipped_adapter_dir(name: str) -> Path:
    """The folder of a shipped adapter (package data; merged into its base like any adapter)."""
    if name not in SHIPPED_ADAPTERS:
        raise SleuthError(f"no shipped adapter {name!r}; choose from {', '.join(SHIPPED_ADAPTERS)}")
    return Path(__file__).resolve().parents[1] / "data" / "adapters" / name


# A Hugging Face Hub repo id: owner/name, each part letters, digits, '-', '_' or '.'.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
# Files that make a folder a model Sleuth can load: HF weights, an OpenVINO export, an adapter.
_MODEL_FOLDER_FILES = ("config.json", "openvino_model.xml", ADAPTER_CONFIG_NAME)


def check_model_spec(spec: str | Path | None) -> None:
    """Refuse a spec that names nothing loadable, before anything is converted, exported or
    downloaded: a bare name that is no named model, a missing ``.gguf``, a file that is not a
    ``.gguf``, a folder that holds no model. A Hub id (``owner/name``) that is not a local
    path is left to the Hub."""
    from sleuth.llm.named import NAMED_MODELS

    if is_packaged(spec) or str(spec) in SHIPPED_ADAPTERS or str(spec) in NAMED_MODELS:
        return
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        if any((path / name).is_file() for name in _MODEL_FOLDER_FILES):
            return
        raise SleuthError(
            f"unknown model {text!r}: the folder holds no model (no config.json, "
            "openvino_model.xml or adapter_config.json)"
        )
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return
        raise SleuthError(f"unknown model {text!r}: a file, but not a .gguf model")
    if path.suffix.lower() == ".gguf":
        raise SleuthError(f"{path.resolve()}: no such GGUF file")
    if _HUB_ID.fullmatch(text):
        return
    if text.startswith(("/", ".", "~")) or text.count("/") > 1:  # a path, not a Hub id
        raise SleuthError(f"unknown model {text!r}: no such folder or file")
    raise SleuthError(
        f"unknown model {text!r}: not a named model (`sleuth model list`), a local folder or a "
        ".gguf (a Hugging Face id has the form owner/name)"
    )


def resolve_hf_folder(spec: str | Path | None) -> tuple[str, str]:
    """``(folder or HF id, display name)`` for ``spec`` (None/"packaged" = SmolLM2-135M;
    "smollm2-135m-primed" = it with the shipped priming adapter merged in)."""
    from sleuth.llm.packaged import PACKAGED_NAME, gguf_to_hf, packaged_model_dir

    if is_packaged(spec):
        return str(packaged_model_dir()), PACKAGED_NAME
    check_model_spec(spec)
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


# -- LoRA adapter folders as models -----------------------------------------------------------
ADAPTER_CONFIG = ADAPTER_CONFIG_NAME


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
    beside = folder / spec  # a local base is written relative to the adapter (train/lora.py)
    if not Path(spec).expanduser().is_absolute() and not is_packaged(spec) and beside.exists():
        spec = str(beside.resolve())
    if Path(spec).expanduser().resolve() == folder.resolve():
        raise LLMError(f"{folder}: the adapter names itself as its base model")
    return spec


def merged_model_dir(folder: Path) -> Path:
    """The adapter at ``folder`` merged into its base: a cached plain HF folder, built once."""

    folder = folder.expanduser().resolve()
    spec = base_spec(folder)
    out = cache_dir() / "models" / "merged" / f"{folder.name[:40]}-{adapter_digest(folder)}"

    def build(tmp: Path) -> None:
        try:
            from peft import PeftModel
        except ImportError:
            raise LLMError("loading a LoRA adapter needs peft: pip install 'sleuth[llm]'") from None
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sleuth.display import safe_markup
        from sleuth.llm.quiet import no_progress_bars
        from sleuth.progress import stderr

        base_folder, _ = resolve_hf_folder(spec)
        stderr.print(
            f"merging the adapter {safe_markup(folder.name)} into {safe_markup(spec)} (once) ..."
        )
        with no_progress_bars():
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
