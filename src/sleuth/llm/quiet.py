"""Loading and saving a model without the libraries' progress bars, where Sleuth says itself
what it loads.

transformers draws a "Loading weights" bar for every model it loads and a "Writing model
shards" bar for every save (its logging's tqdm, which its own ``disable_progress_bar`` turns
off), and a "Converting and de-quantizing GGUF tensors" bar while reading a GGUF (a plain
``tqdm.auto`` bar that no transformers setting reaches). In a command that prints "converting
... (once)" or "merging ... (once)" they are noise, and in logs and captured output they are
lines of carriage returns.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' loading, saving and GGUF-conversion bars off inside the block, then
    restored as they were (a caller that wants the bars back gets them back)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        gguf = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:  # no gguf support installed: there is no such bar either
        gguf = None
    bar = getattr(gguf, "tqdm", None)
    if bar is not None:
        gguf.tqdm = functools.partial(bar, disable=True)  # type: ignore[union-attr]
    try:
        yield
    finally:
        if bar is not None:
            gguf.tqdm = bar  # type: ignore[union-attr]
        if was_enabled:
            hf_logging.enable_progress_bar()
