"""LoRA settings shared by the fine-tuning (``train sft``) and GRPO (``train searcher``)
trainers, and the portable base pointer their adapters carry.

peft writes the base model's resolved folder (a cache path on this machine) into
``adapter_config.json``; Sleuth rewrites it to the spec the user gave (``packaged``, a named
model, a folder), so the adapter loads on another machine the same way (``sleuth.llm.models``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_CONFIG = "adapter_config.json"


def lora_config(model: Any, r: int, alpha: int, top_layers: int = 0) -> Any:
    """A peft ``LoraConfig`` over every projection of the top ``top_layers`` layers (0 = all:
    fewer stops backpropagation earlier, which is what makes a CPU step cheaper)."""
    from peft import LoraConfig

    layers = int(model.config.num_hidden_layers)
    top = min(top_layers, layers) if top_layers > 0 else layers
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.05,
        target_modules=list(LORA_TARGETS),
        layers_to_transform=list(range(layers - top, layers)),
        task_type="CAUSAL_LM",
    )


def point_adapter_at(folder: Path, base_spec: str | None, home: Path | None = None) -> bool:
    """Make the adapter in ``folder`` name its base by Sleuth's spec (None = packaged); False
    when ``folder`` holds no adapter (a full fine-tune).

    A base that is a local folder (another adapter, a saved model) is written relative to
    ``home``, where the adapter will live once published (default ``folder``), so the pair loads
    from any working directory and moves together; a name stays a name."""
    path = Path(folder) / ADAPTER_CONFIG
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = _portable_base(base_spec, Path(home or folder))
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return True


def _portable_base(base_spec: str | None, home: Path) -> str:
    if not base_spec:
        return "packaged"
    local = Path(base_spec).expanduser()
    if not local.exists():  # a named model or a Hugging Face id
        return base_spec
    return os.path.relpath(local.resolve(), home.expanduser().resolve())
