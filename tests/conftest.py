"""Test-wide settings: everything runs offline on the bundled data and packaged models."""

import os

# Hub downloads fail on this machine (and must never be needed): force offline loading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket
import threading
import time
from pathlib import Path

import pytest

from sleuth.corpus import load_documents
from sleuth.search import build_index, open_index


@pytest.fixture(scope="session")
def hotpot_bm25_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real BM25 index of the bundled HotpotQA corpus (10,785 paragraphs), built once."""
    out = tmp_path_factory.mktemp("indexes") / "hotpot-bm25"
    return build_index(load_documents("hotpotqa-1100"), out, source="hotpotqa-1100")


@pytest.fixture(scope="session")
def hotpot_bm25(hotpot_bm25_path: Path):
    return open_index(hotpot_bm25_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on loopback in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def tokenizer():
    """The packaged SmolLM2's tokenizer (its real 49k-token vocabulary)."""
    from transformers import AutoTokenizer

    from sleuth.llm.models import resolve_hf_folder

    return AutoTokenizer.from_pretrained(resolve_hf_folder(None)[0])


@pytest.fixture(scope="session")
def packaged_llm():
    """The packaged SmolLM2-135M on the default local backend (OpenVINO), loaded once."""
    from sleuth.llm import load_llm

    return load_llm()
