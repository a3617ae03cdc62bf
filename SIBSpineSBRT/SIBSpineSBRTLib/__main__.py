"""``python -m SIBSpineSBRTLib``: the same command line as ``sibspine``."""

import sys

from .frontends.cli import main

sys.exit(main())
