"""First-use conversions under concurrency (issue 13, item 7): two real processes converting
into the same cache folder build it once; the second waits and reuses it; nothing is removed
from under a reader; a crashed build leaves no debris that blocks the next one."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sleuth.llm.locks import publish_once

BUILDER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from sleuth.llm.locks import publish_once

    out, log = Path(sys.argv[1]), Path(sys.argv[2])

    def build(tmp):
        with open(log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "event": "build"}) + "\\n")
        tmp.mkdir()
        time.sleep(1.5)  # a slow conversion: the other process arrives meanwhile
        (tmp / "config.json").write_text("{}")

    path = publish_once(out, build, lambda p: (p / "config.json").is_file())
    with open(log, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "event": "ready", "path": str(path)}) + "\\n")
    """
)


def test_two_processes_converting_at_once_build_once(tmp_path: Path):
    out, log = tmp_path / "models" / "m", tmp_path / "log.jsonl"
    out.parent.mkdir()
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    first = subprocess.Popen([sys.executable, str(script), str(out), str(log)])
    time.sleep(0.3)
    second = subprocess.Popen([sys.executable, str(script), str(out), str(log)])
    assert first.wait(60) == 0 and second.wait(60) == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events].count("build") == 1
    assert {e["path"] for e in events if e["event"] == "ready"} == {str(out)}
    assert (out / "config.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == [".m.lock", "m"]  # no temp debris


def test_a_finished_folder_is_never_rebuilt_or_removed(tmp_path: Path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    before = (out / "config.json").stat().st_ino

    def build(tmp: Path) -> None:  # must not run: the folder is finished
        raise AssertionError("rebuilt a finished folder")

    assert publish_once(out, build, lambda p: (p / "config.json").is_file()) == out
    assert (out / "config.json").stat().st_ino == before


def test_a_failed_build_leaves_nothing_and_the_next_one_succeeds(tmp_path: Path):
    out = tmp_path / "m"

    def failing(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_once(out, failing, lambda p: (p / "config.json").is_file())
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == [".m.lock"]

    def working(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")

    assert publish_once(out, working, lambda p: (p / "config.json").is_file()) == out


def test_the_packaged_model_conversion_goes_through_the_lock(monkeypatch):
    """The real conversion path (the cached folder, converted once by `make install`)."""
    from sleuth.llm import packaged

    calls = []
    real = packaged.publish_once

    def spy(out, build, ready):
        calls.append(out)
        return real(out, build, ready)

    monkeypatch.setattr(packaged, "publish_once", spy)
    folder = packaged.packaged_model_dir()
    assert calls == [folder] and (folder / "config.json").is_file()
