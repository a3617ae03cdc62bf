"""SIBSpineSBRT library: planning volumes, exact DVH metrics and protocol review for spine SBRT with a
simultaneous integrated boost.

Pure Python on numpy/scipy; MRML is touched only in ``SIBSpineSBRTLib.mrml``, and nothing here imports
Qt or ``slicer.util`` at import time, so the same code runs in desktop Slicer, in slicer-core and in
plain Python.
"""

__version__ = "0.1.0"
