"""``python -m dtcore``: the same entry point as the ``dtcore`` console script."""

import sys

from dtcore.cli import main

sys.exit(main())
