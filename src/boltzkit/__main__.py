"""``python -m boltzkit``: the ``boltzkit`` command."""

import sys

from .cli import main

sys.exit(main())
