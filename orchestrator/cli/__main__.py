"""``python -m orchestrator.cli``: the same as the ``sora-unmark`` script."""

import sys

from orchestrator.cli import main

sys.exit(main())
