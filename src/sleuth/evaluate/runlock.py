"""One ``sleuth eval run`` at a time per run folder.

Two processes resuming the same folder would each run every pending episode (each reads the
results before the other writes), so a run holds an exclusive ``flock`` on ``OUT/run.lock``
for as long as it runs, and writes its PID and command into it. A second run is refused
naming that holder. The kernel drops the lock when its process dies, so the lock of a killed
run is simply taken over (its stale PID line overwritten).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from sleuth.errors import SleuthError

LOCK_FILE = "run.lock"
_held: set[Path] = set()  # folders this process holds: taking one again is a no-op


def holder_line() -> str:
    """``pid 1234: sleuth eval run --out runs/a ...``: who holds the lock, for the refusal."""
    command = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if command[0] in ("__main__.py", "-m"):
        command[0] = "sleuth"
    return f"pid {os.getpid()}: {shlex.join(command)}"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (the folder is created); a SleuthError naming
    the holder when another live process has it. Re-entrant within one process."""
    key = Path(run_dir).expanduser().resolve()
    if key in _held:
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise SleuthError(f"cannot write to {run_dir}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = " ".join(handle.read().split()) or "a process that has not written its PID"
            raise SleuthError(
                f"{run_dir} is in use by another `sleuth eval run` ({holder}); wait for it to "
                "finish, or give another --out"
            ) from None
        except OSError:
            pass  # a filesystem without locks (some network mounts): run unguarded
        handle.seek(0)
        handle.truncate()
        handle.write(holder_line() + "\n")
        handle.flush()
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()  # released: no stale PID left for the reader of the file
    finally:
        handle.close()  # closing drops the flock
