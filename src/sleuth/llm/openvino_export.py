"""Convert a model to OpenVINO IR once, into the cache (fp16 weights by default; int8, fp32).

The exporter is optimum-intel's. Its pins (transformers<5.6, an older huggingface-hub, a
torchvision that does not import beside torch 2.13.0) disagree with Sleuth's own environment,
so it runs in a separate virtual environment that Sleuth creates in the cache on first use
(about 1-3 minutes, once per machine) from ``openvino_export.lock``: exact versions and hashes,
resolved by ``make lock`` from ``openvino_export_requirements.txt``, so a new upstream release
never changes what is installed (torch, pinned by version, comes first). The OpenVINO
runtime that *runs* the model needs none of this: only ``openvino-genai`` in the main
environment. ``SLEUTH_OV_EXPORT_PYTHON`` points at an existing exporter environment instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from sleuth.display import safe_markup
from sleuth.errors import LLMError
from sleuth.llm.locks import file_lock, publish_once
from sleuth.progress import stderr

LOCK = "openvino_export.lock"
TORCH = "torch==2.13.0"  # by version: the CPU build is not PyPI's file of that version
WEIGHT_FORMATS = ("int8", "int4", "fp16", "fp32")
_READY = ".sleuth-ready"


def _lock_text() -> str:
    return resources.files("sleuth.llm").joinpath(LOCK).read_text()


def _run(command: list[str], log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise LLMError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{tail}")


def exporter_python() -> Path:
    """The Python of the exporter environment, created on first use."""
    if override := os.environ.get("SLEUTH_OV_EXPORT_PYTHON"):
        return Path(override)
    from sleuth.paths import cache_dir

    lock = _lock_text()
    digest = hashlib.sha1((lock + TORCH).encode()).hexdigest()[:10]
    env = cache_dir() / "tools" / f"openvino-export-{digest}"
    python = env / "bin" / "python"
    if (env / _READY).is_file():
        return python
    with file_lock(env.with_name(f".{env.name}.lock")):
        if (env / _READY).is_file():
            return python
        shutil.rmtree(env, ignore_errors=True)  # an unfinished build: nobody else uses it
        env.parent.mkdir(parents=True, exist_ok=True)
        log = env.with_name(f"{env.name}.log")
        stderr.print(
            f"creating the OpenVINO exporter environment (once, ~1-3 min): {safe_markup(env)} "
            f"(log: {safe_markup(log)})"
        )
        lock_file = env.with_name(f"{env.name}.lock")
        lock_file.write_text(lock)
        base = sys.executable
        _run([base, "-m", "venv", str(env)], log, "creating the exporter venv")
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # --no-deps: the lock is the whole closure (without torchvision, which optimum-intel
        # declares and which breaks beside torch 2.13.0).
        _run([*pip, "--no-deps", TORCH], log, "installing torch into the exporter")
        _run(
            [*pip, "--no-deps", "--require-hashes", "-r", str(lock_file)],
            log,
            "installing the exporter",
        )
        (env / _READY).write_text(lock)
    return python


def openvino_model_dir(source: str, name: str, weight_format: str = "fp16") -> Path:
    """``source`` (an HF folder or id) exported to OpenVINO IR in the cache, once."""
    from sleuth.paths import cache_dir

    if weight_format not in WEIGHT_FORMATS:
        raise LLMError(f"weight format must be one of {WEIGHT_FORMATS}, not {weight_format!r}")
    key = source
    source_path = Path(source)
    if (source_path / "config.json").is_file():
        key = f"{source_path.resolve()}:{(source_path / 'config.json').stat().st_mtime_ns}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    safe_name = "".join(c if c.isalnum() or c in "-._" else "_" for c in name)[:60]
    out = cache_dir() / "models" / "openvino" / f"{safe_name}-{weight_format}-{digest}"

    def ready(path: Path) -> bool:
        return all((path / f).is_file() for f in ("openvino_model.xml", "tokenizer_config.json"))

    if ready(out):
        return out

    def build(tmp: Path) -> None:
        python = exporter_python()
        log = out.with_name(f"{out.name}.log")
        stderr.print(
            f"converting {safe_markup(name)} to OpenVINO {weight_format} (once, ~1-2 min) ..."
        )
        command = [
            str(python), "-m", "optimum.commands.optimum_cli", "export", "openvino",
            "--model", source, "--task", "text-generation-with-past",
            "--weight-format", weight_format, str(tmp),
        ]  # fmt: skip
        _run(command, log, f"exporting {name} to OpenVINO")

    out.parent.mkdir(parents=True, exist_ok=True)
    return publish_once(out, build, ready)
