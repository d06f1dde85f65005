"""``python -m lib_enhancer``."""

import sys

from lib_enhancer.cli import main

if __name__ == "__main__":
    sys.exit(main())
