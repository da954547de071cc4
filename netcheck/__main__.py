"""``python -m netcheck ...``: the ``netcheck`` command, for an interpreter named explicitly."""

import sys

from netcheck.cli import main

sys.exit(main(sys.argv[1:]))
