"""Fine-tuning with sentence-transformers: the bi-encoder (MultipleNegativesRankingLoss: every
other passage of the batch is a negative, plus one BM25 hard negative per pair) and an
optional cross-encoder reranker (binary cross-entropy on positives and hard negatives),
both starting from the packaged MiniLM weights."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError


@dataclass(frozen=True)
class Triplet:
    query: str
    positive: str  # passage text (title + text)
    negative: str | None  # a hard negative's text, if one was found


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 256
    seed: int = 0


def _progress_callback(advance: Callable[[int], None] | None) -> Any:
    from transformers import TrainerCallback

    class Advance(TrainerCallback):  # one tick per optimizer step, on Sleuth's progress bar
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if advance:
                advance(1)

    return Advance()


def steps_for(count: int, settings: TrainSettings) -> int:
    return max(1, math.ceil(count / settings.batch_size)) * settings.epochs


def _fit(
    trainer_cls: Any,
    args_cls: Any,
    model: Any,
    data: Any,
    loss: Any,
    settings: TrainSettings,
    progress: Callable[[int], None] | None,
    **extra: Any,
) -> Any:
    """One training run, the same for both model kinds: CPU, no checkpoints or logging,
    linear warm-up over ``settings.warmup_ratio`` of the steps, seeded order; returns the
    trainer's ``TrainOutput``."""
    warmup = int(settings.warmup_ratio * steps_for(len(data), settings))
    with tempfile.TemporaryDirectory(prefix="sleuth-train-") as work:
        args = args_cls(
            output_dir=work,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            warmup_steps=warmup,
            seed=settings.seed,
            data_seed=settings.seed,
            save_strategy="no",
            report_to="none",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            **extra,
        )
        trainer = trainer_cls(
            model=model,
            args=args,
            train_dataset=data,
            loss=loss,
            callbacks=[_progress_callback(progress)],
        )
        return trainer.train()


def _imports() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import datasets  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        raise SleuthError("training a retriever needs: pip install 'sleuth[dense,train]'") from None
    from transformers.utils.logging import disable_progress_bar, set_verbosity_error

    disable_progress_bar()
    set_verbosity_error()  # "some weights were newly initialised" is expected for a reranker


def train_bi_encoder(
    base: str,
    triplets: Sequence[Triplet],
    out: Path,
    settings: TrainSettings,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune the sentence-transformers model at ``base`` and save it to ``out``."""
    _imports()
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    try:  # sentence-transformers >= 6 moved it; older releases have only the first path
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:
        from sentence_transformers.training_args import BatchSamplers

    with_negative = [t for t in triplets if t.negative is not None]
    if not with_negative:
        raise SleuthError("no training pairs with a hard negative; generate more queries")
    model = SentenceTransformer(base, device="cpu", local_files_only=True)
    model.max_seq_length = settings.max_seq_length
    data = Dataset.from_dict(
        {
            "anchor": [t.query for t in with_negative],
            "positive": [t.positive for t in with_negative],
            "negative": [t.negative for t in with_negative],
        }
    )
    output = _fit(
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        model,
        data,
        MultipleNegativesRankingLoss(model),
        settings,
        progress,
        # a passage twice in a batch would be its own false negative
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    model.save(str(out))
    return {"pairs": len(with_negative), "steps": output.global_step, "loss": output.training_loss}


def train_cross_encoder(
    base: str,
    triplets: Sequence[Triplet],
    out: Path,
    settings: TrainSettings,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """A CrossEncoder initialised from ``base``'s transformer weights (a new scoring head),
    trained to tell each query's passage (label 1) from its hard negative (label 0)."""
    _imports()
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    queries, passages, labels = [], [], []
    for t in triplets:
        queries.append(t.query), passages.append(t.positive), labels.append(1.0)
        if t.negative is not None:
            queries.append(t.query), passages.append(t.negative), labels.append(0.0)
    if 0.0 not in labels:
        raise SleuthError("no hard negatives to train the reranker on; generate more queries")
    model = CrossEncoder(
        base, num_labels=1, max_length=settings.max_seq_length, device="cpu", local_files_only=True
    )
    data = Dataset.from_dict({"query": queries, "passage": passages, "label": labels})
    output = _fit(
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
        model,
        data,
        BinaryCrossEntropyLoss(model),
        settings,
        progress,
    )
    model.save(str(out))
    return {"pairs": len(labels), "steps": output.global_step, "loss": output.training_loss}
