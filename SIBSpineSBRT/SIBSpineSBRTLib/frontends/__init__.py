"""Front ends: the command line here; the Slicer module is SIBSpineSBRT.py beside this package."""
