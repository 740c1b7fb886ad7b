"""Issue 33 item 19: transformers' "Loading weights" and GGUF-conversion bars stay off where
Sleuth loads a model and says so itself. A real (tiny, random) model is saved and loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")


def tiny_model(folder: Path) -> Path:
    """A one-layer Llama with a word-level tokenizer: loads in well under a second."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "search", "answer", "Paris"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_loading_a_model_draws_no_weight_bar(tmp_path: Path, capfd) -> None:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from sleuth.train.policy_model import load_trainable

    folder = tiny_model(tmp_path / "tiny")
    # other parts of Sleuth (the dense encoder, the reranker) turn the bars off for the whole
    # process once they load; the control needs them on, as in a fresh process
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    AutoModelForCausalLM.from_pretrained(folder)  # the control: transformers draws the bar
    assert "Loading weights" in capfd.readouterr().err
    model, tokenizer, _ = load_trainable(str(folder))
    assert model is not None and tokenizer.padding_side == "left"
    assert "Loading weights" not in capfd.readouterr().err
    from sleuth.llm.transformers_local import TransformersLLM

    assert TransformersLLM(str(folder), threads=1).model is not None  # the inference backend
    assert "Loading weights" not in capfd.readouterr().err
    AutoModelForCausalLM.from_pretrained(folder)  # restored afterwards, as it was
    assert "Loading weights" in capfd.readouterr().err


def test_the_gguf_conversion_bar_is_off_inside_no_progress_bars(capfd) -> None:
    """The GGUF reader's bar is a plain tqdm no transformers setting reaches; this is the very
    object its conversion loop calls."""
    gguf = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")

    from sleuth.llm.quiet import no_progress_bars

    desc = "Converting and de-quantizing GGUF tensors..."
    list(gguf.tqdm(range(30), desc=desc))
    assert desc in capfd.readouterr().err  # the control
    with no_progress_bars():
        list(gguf.tqdm(range(30), desc=desc))
    assert desc not in capfd.readouterr().err
    list(gguf.tqdm(range(30), desc=desc))
    assert desc in capfd.readouterr().err


@pytest.mark.slow  # ~40 s on 2 busy cores: the packaged GGUF is converted into a fresh cache
def test_converting_the_packaged_gguf_prints_only_sleuths_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "SLEUTH_CACHE": str(tmp_path)}
    code = "from sleuth.llm.packaged import packaged_model_dir; packaged_model_dir()"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("converting "), done.stderr
    assert "\r" not in done.stderr and "%|" not in done.stderr
