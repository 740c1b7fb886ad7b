"""``sleuth train sft``: supervised fine-tuning on agent trajectories (TRL's SFTTrainer).

Each trajectory becomes one pre-tokenized example (``sleuth.train.sft_data``): loss on the
model's own turns only, the mask GRPO uses. LoRA (peft) by default, or full fine-tuning. The
output folder is built beside ``--out`` and renamed into place when complete; it records the
data file's sha256, the seed, library versions, the base model and the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sleuth.agent.trained_settings import PROVENANCE, settings_of_episodes
from sleuth.errors import SleuthError
from sleuth.train.lora import lora_config, point_adapter_at


@dataclass(frozen=True)
class SFTRunConfig:
    data: str
    out: str
    model: str | None = None  # None = the packaged SmolLM2-135M-Instruct
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    # > 0: adapt only the top N transformer layers; backpropagation then stops there, which
    # roughly halves a CPU step (the lower layers need no gradient at all)
    lora_top_layers: int = 0
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    learning_rate: float = 3e-4
    batch_size: int = 1
    grad_accum: int = 4
    max_length: int = 1536
    limit: int = 0  # use the first N trajectories (0 = all)
    max_minutes: float = 0.0  # > 0: stop training after this much wall time (then save)
    seed: int = 0
    overwrite: bool = False
    # "trajectories" (agent episodes) or "messages": one {"messages": [...]} chat a line, loss
    # on its assistant turns (``sleuth train simulator`` writes these)
    data_format: str = "trajectories"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    from sleuth import __version__

    out["sleuth"] = __version__
    return out


def load_examples(
    config: SFTRunConfig, tokenizer: Any
) -> tuple[list[dict], dict[str, int], dict[str, Any]]:
    """Tokenized examples of the data file (episodes longer than ``max_length`` are skipped),
    counts, and the agent settings the episodes share (``sleuth.agent.trained_settings``)."""
    from sleuth.agent.log import TrajectoryLog
    from sleuth.train.sft_data import SFTEncoder

    path = Path(config.data)
    if not path.is_file():
        raise SleuthError(f"{path}: no such trajectory file")
    encoder = SFTEncoder(tokenizer)
    if config.data_format == "messages":
        trajectories = read_chats(path)
        encode = encoder.encode
    else:
        trajectories = TrajectoryLog(path).read()
        encode = encoder.encode_trajectory
    if config.limit:
        trajectories = trajectories[: config.limit]
    settings = (
        {}
        if config.data_format == "messages"
        else settings_of_episodes(t.config for t in trajectories)
    )
    rows, too_long = [], 0
    for trajectory in trajectories:
        example = encode(trajectory)
        if len(example.input_ids) > config.max_length:
            too_long += 1
            continue
        if 1 in example.assistant_masks:
            rows.append(
                {"input_ids": example.input_ids, "assistant_masks": example.assistant_masks}
            )
    if not rows:
        raise SleuthError(f"{path}: no trajectory with a model turn fits in {config.max_length}")
    counts = {
        "examples_sha256": examples_digest(rows),
        "trajectories": len(trajectories),
        "examples": len(rows),
        "skipped_too_long": too_long,
        "tokens": sum(len(r["input_ids"]) for r in rows),
        "loss_tokens": sum(sum(r["assistant_masks"]) for r in rows),
    }
    return rows, counts, settings


def examples_digest(rows: list[dict]) -> str:
    """sha256 of what is trained on (token ids and loss masks, in order). The data file's own
    sha256 changes with every synthesis, since trajectories record their timings; this one is
    the same whenever the same episodes are trained on, so a rebuild (``make searcher``) can be
    checked against a shipped record."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row["input_ids"], row["assistant_masks"]]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def read_chats(path: Path) -> list[Any]:
    """The chats of a ``{"messages": [...]}`` JSONL file; a bad line is an error naming it."""
    chats = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SleuthError(f'{path}:{number}: not a {{"messages": [...]}} line') from None
        chats.append(messages)
    return chats


def _staging(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old one is swapped out, then removed."""
    old = None
    if out.exists():
        if not overwrite:
            raise SleuthError(f"{out} exists; pass --overwrite to replace it")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:6]}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _progress_callback(log: Callable[[str], None], max_minutes: float) -> Any:
    """Logs each step; on a shared CPU, also stops at a wall-time budget (the run still saves)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        started = time.perf_counter()
        stopped_early = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                elapsed = time.perf_counter() - self.started
                log(
                    f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                    f"({elapsed:.0f} s)"
                )

        def on_step_end(self, args, state, control, **kwargs):
            if max_minutes and time.perf_counter() - self.started > max_minutes * 60:
                Progress.stopped_early = True
                control.should_training_stop = True

    return Progress()


def train_sft(config: SFTRunConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune and write the adapter (or the full model) to ``config.out``; the summary."""
    from datasets import Dataset
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    from sleuth.train.policy_model import load_trainable

    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise SleuthError(f"{out} exists; pass --overwrite to replace it")
    hf_logging.disable_progress_bar()
    model, tokenizer, base_name = load_trainable(config.model)
    tokenizer.padding_side = "right"
    rows, counts, inference = load_examples(config, tokenizer)
    log(
        f"{counts['examples']} examples, {counts['tokens']} tokens ({counts['loss_tokens']} "
        f"trained on); {counts['skipped_too_long']} longer than {config.max_length} skipped"
    )
    peft_config = (
        lora_config(model, config.lora_r, config.lora_alpha, config.lora_top_layers)
        if config.lora
        else None
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _staging(out)
    work = tmp.with_name(tmp.name + "-work")
    args = SFTConfig(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        max_length=config.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=True,
        # TRL turns bf16 autocast on by default; a CPU without bf16 units then runs every matmul
        # in torch's reference gemm: one 8-episode step took 32 minutes instead of ~1.
        bf16=False,
        gradient_checkpointing=False,  # TRL defaults it on: ~25% slower, and 135M fits anyway
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_progress_callback(log, config.max_minutes)],
    )
    started = time.perf_counter()
    try:
        result = trainer.train()
        seconds = time.perf_counter() - started
        tmp.mkdir(parents=True)
        trainer.model.save_pretrained(tmp)
        if not config.lora:
            tokenizer.save_pretrained(tmp)
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        summary = {
            "kind": "lora" if config.lora else "full",
            "base_model": config.model or "packaged",
            "base_model_name": base_name,
            "data": str(config.data),
            "data_sha256": sha256_file(Path(config.data)),
            **counts,
            "config": asdict(config),
            # what ask / eval / demo default to for this model (sleuth.agent.trained_settings)
            "inference": inference,
            "steps": trainer.state.global_step,
            "planned_steps": trainer.state.max_steps,
            "train_loss": result.training_loss,
            "first_losses": losses[:5],
            "last_losses": losses[-5:],
            "seconds": round(seconds, 1),
            "seed": config.seed,
            "versions": versions(),
            "command": shlex.join(["sleuth", *sys.argv[1:]]),
        }
        point_adapter_at(tmp, config.model, home=out)  # a portable pointer, not a cache path
        (tmp / PROVENANCE).write_text(json.dumps(summary, indent=2))
        _publish(tmp, out, config.overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return summary
