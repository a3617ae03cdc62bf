"""The residents' web demo (``sibspine serve``): the plan review in a browser, on trame-slicer.

Real Slicer slice views rendered from slicer-core on the server (fused MR/CT axial with outlines, CT axial with
the dose colour-wash, sagittal), beside the pass/fail panel and the DVH. The app only binds widgets to the
library (``review.teaching``, ``review.demo``, ``mrml``): every number, status, colour and explanation comes
from the same functions the Slicer module and the CLI use.

``app.serve`` / ``app.main`` start it; importing this package imports nothing heavy (trame, VTK and slicer
are imported when the server starts).
"""

from __future__ import annotations


def serve(*args, **kwargs):
    """See ``app.serve``."""
    from .app import serve as _serve

    return _serve(*args, **kwargs)


def main(argv=None) -> int:
    """See ``app.main``."""
    from .app import main as _main

    return _main(argv)
