"""``sleuth serve`` as a real child process, for tests of what a user of the command sees."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

BANNER = re.compile(r"serving .* at (http://\S+)")


def sleuth(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the ``sleuth`` CLI in a child process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


class ServeProcess:
    """``sleuth serve INDEX --port 0 ARGS``; the URL is read from its banner, stderr kept."""

    def __init__(self, index: Path, *args: str) -> None:
        self.command = [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--port", "0"]
        self.command += list(args)
        self.lines: list[str] = []
        self.url = ""

    def __enter__(self) -> ServeProcess:
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = [m.group(1) for m in map(BANNER.search, list(self.lines)) if m]
            if found:
                self.url = found[0]
                break
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader thread take the last lines
                raise AssertionError(f"sleuth serve exited: {self.stderr}")
            time.sleep(0.05)
        else:
            self.proc.kill()
            raise AssertionError(f"sleuth serve did not start: {self.stderr}")
        while httpx.get(f"{self.url}/health", timeout=10).status_code != 200:
            time.sleep(0.05)
        return self

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.stderr}")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
