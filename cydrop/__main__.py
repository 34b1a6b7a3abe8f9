"""``python -m cydrop``: see :mod:`cydrop.cli`."""

import sys

from cydrop.cli import main

if __name__ == "__main__":
    sys.exit(main())
