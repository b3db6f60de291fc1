"""``python -m masklet.cli``: the ``masklet`` command."""

import sys

from . import main

sys.exit(main())
