"""``python -m nas.cli``: the ``nas`` command without its console script."""

import sys

from . import main

sys.exit(main())
