"""The ``sleuth`` command line, the top floor: every command and the option groups they share.

Each module here registers one area's commands on the app in ``main``; the floors below never
import from here.
"""

from sleuth.cli.main import app, main, reflow

__all__ = ["app", "main", "reflow"]
