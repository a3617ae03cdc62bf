"""dicompyler-core in its own venv (it needs pydicom < 3, so never in the project's venv), made once under
~/.cache and reused by the cross-check test and the benchmarks. Override with SIBSPINE_DICOMPYLER_PYTHON."""

import os
import subprocess
import sys
from pathlib import Path

# dicompyler-core 0.5.6 reads pydicom 2 only; scikit-image enables its interpolation mode; shapely its volumes
PINS = ("dicompyler-core==0.5.6", "pydicom==2.4.4", "scikit-image==0.25.2", "shapely==2.1.2")
VENV = Path.home() / ".cache" / "sibspine-bench" / "dicompyler-venv"


def dicompyler_python() -> str:
    """Path of a python with dicompyler-core (created and pinned on first use)."""
    given = os.environ.get("SIBSPINE_DICOMPYLER_PYTHON")
    if given:
        return given
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)  # a no-op once installed
    return str(python)
