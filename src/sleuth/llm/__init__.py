"""LLM backends behind one protocol (``sleuth.llm.base.LLM``).

>>> from sleuth.llm import load_llm
>>> llm = load_llm()                                    # packaged SmolLM2-135M, in-process
>>> llm = load_llm("Qwen/Qwen2.5-7B-Instruct", url="http://localhost:8000/v1")  # vLLM/SGLang
"""

from __future__ import annotations

from sleuth.llm.base import LLM, Completion, GenerationConfig, Message, ToolCall, Usage

__all__ = ["LLM", "Completion", "GenerationConfig", "Message", "ToolCall", "Usage", "load_llm"]


# OpenVINO weight formats by backend name. fp16 is the default because int8 changed the first
# 32 greedy tokens of SmolLM2-135M on 62% of 60 question prompts (fp16: 2%, at 85% of int8's
# speed); ``openvino-int8`` stays for speed where that is acceptable (docs/llm.md).
OPENVINO_BACKENDS = {"openvino": "fp16", "openvino-int8": "int8", "openvino-fp32": "fp32"}
BACKENDS = ("auto", *OPENVINO_BACKENDS, "transformers")


def load_llm(
    spec: str | None = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    backend: str = "auto",
    **kwargs,
) -> LLM:
    """Pick a backend from a model spec.

    ``url=`` (or a spec that is an http(s) URL): an OpenAI-compatible server with model
    ``spec``; ``"llama:PATH.gguf"``: llama-cpp-python. Anything else (None/"packaged" for the
    packaged SmolLM2-135M, a named model such as ``qwen2.5-coder-0.5b``, an HF id, a local
    folder or a ``.gguf`` file) runs in-process on ``backend``: ``openvino`` (continuous
    batching, fp16 weights; the default when openvino-genai is installed), ``openvino-int8``
    (faster, changes a small model's greedy output), ``openvino-fp32`` or ``transformers``.
    """
    from sleuth.errors import LLMError

    if backend not in BACKENDS:
        raise LLMError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if spec and spec.startswith(("http://", "https://")):
        url, spec = spec, None
    if url:
        from sleuth.llm.openai_http import OpenAIChatLLM

        return OpenAIChatLLM(url, spec, api_key=api_key, **kwargs)
    if spec and spec.startswith("llama:"):
        from sleuth.llm.llama_cpp_backend import LlamaCppLLM

        return LlamaCppLLM(spec.removeprefix("llama:"), **kwargs)
    from sleuth.llm.models import check_model_spec

    check_model_spec(spec)  # an unknown name fails here, before any export or download
    if backend == "auto":
        backend = "openvino" if _has_openvino() else "transformers"
    if backend in OPENVINO_BACKENDS:
        from sleuth.llm.openvino_backend import OpenVINOLLM

        kwargs.setdefault("weight_format", OPENVINO_BACKENDS[backend])
        return OpenVINOLLM(spec, **kwargs)
    from sleuth.llm.transformers_local import TransformersLLM

    return TransformersLLM(spec, **kwargs)


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino_genai") is not None
