"""``python -m nas.cli``: the ``nas`` command."""

from nas.cli.app import main

main()
