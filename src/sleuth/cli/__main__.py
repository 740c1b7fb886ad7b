"""``python -m sleuth.cli``: the same as the ``sleuth`` command."""

from sleuth.cli.main import main

main()
