"""The ``nas`` command line: one module per command group, sharing :mod:`nas.cli.common`.

``nas`` and ``nas-search`` are the console scripts :func:`main` and :func:`search_main`; the
library below ``nas/`` never imports from here.
"""

from nas.cli.app import app, main, search_main

__all__ = ["app", "main", "search_main"]
