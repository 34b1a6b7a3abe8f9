"""``python -m cydrop``: see :mod:`cydrop.apps.cli`."""

import sys

from cydrop.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
