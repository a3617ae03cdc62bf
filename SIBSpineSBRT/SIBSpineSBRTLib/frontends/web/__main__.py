"""``python -m SIBSpineSBRTLib.frontends.web``: the same as ``sibspine serve``."""

import sys

from .app import main

sys.exit(main())
