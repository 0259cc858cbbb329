"""``python -m taskrunner_cli``."""

import sys

from .app import main

sys.exit(main())
