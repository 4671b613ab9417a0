"""``python -m faultlab``: the same as the ``faultlab`` command."""

from faultlab.cli import main

main()
