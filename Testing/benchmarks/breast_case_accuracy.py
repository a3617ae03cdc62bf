"""The real breast case (dicompyler-core 0.5.6's example data, ``Testing/real_data.py``): our DVH engine and
dicompyler-core, as shipped and with its interpolation, each against the brute-force reference.

    .venv/bin/python Testing/benchmarks/breast_case_accuracy.py [--dicompyler-python PATH]

dicompyler-core runs in its own pinned venv (``Testing/dicompyler_env.py``, made on first use). Its
interpolation mode: the in-plane dose at a quarter of the dose pixel spacing and 2 segments between
planes (its more accurate mode, as in ``bench_dvh.py``). Prints, per ROI and metric, the reference and each
tool's difference from it (Gy), then the largest difference per tool over D2%, D50%, D98%, D0.03cc and
Dmean, and how far each tool's Dmax lies above the exact maximum. Prints no patient data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "Testing"), str(REPO / "SIBSpineSBRT")]

import real_data  # noqa: E402

METRICS = ("D2%", "D50%", "D98%", "D0.03cc", "Dmean")

DICOMPYLER_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import logging; logging.disable(logging.CRITICAL)
from dicompylercore import dicomparser, dvhcalc
rs_path, dose_path, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if "interpolation_resolution" in options:
    options["interpolation_resolution"] = tuple(options["interpolation_resolution"])
out = {}
for number, s in sorted(dicomparser.DicomParser(rs_path).GetStructures().items()):
    try:
        dvh = dvhcalc.get_dvh(rs_path, dose_path, number, **options)
    except Exception as exc:
        continue
    if not dvh.volume:
        continue
    row = {"volume_cc": float(dvh.volume), "Dmean": float(dvh.mean), "Dmax": float(dvh.max), "Dmin": float(dvh.min)}
    for n in ("D2%", "D50%", "D98%", "D0.03cc"):
        row[n] = float(dvh.statistic(n.replace("%", "")).value)
    out[s["name"]] = row
print(json.dumps(out))
"""


def ours(folder: Path):
    exe = Path(sys.executable).with_name("sibspine")
    args = [a for m in (*METRICS, "Dmax", "Dmin") for a in ("--metric", m)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "dvh", "--dose", folder / "rtdose.dcm", "--rtstruct", folder / "rtss.dcm", "--json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)["structures"], time.perf_counter() - t0


def dicompyler(python: str, folder: Path, options: dict):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", DICOMPYLER_SCRIPT, folder / "rtss.dcm", folder / "rtdose.dcm", json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout), time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dicompyler-python", default=None, help="python with dicompyler-core (default: pinned venv)")
    args = parser.parse_args()
    from dicompyler_env import dicompyler_python

    python = args.dicompyler_python or dicompyler_python()
    folder = real_data.breast_case()
    dose = real_data.Dose.read(folder / "rtdose.dcm")
    rois = real_data.read_rois(folder / "rtss.dcm")
    t0 = time.perf_counter()
    reference = {name: real_data.reference_dvh(roi, dose) for name, roi in rois.items()}
    t_ref = time.perf_counter() - t0
    tools = {"ours": ours(folder)}
    tools["dicompyler"] = dicompyler(python, folder, {})
    tools["dicompyler interp."] = dicompyler(
        python,
        folder,
        {"interpolation_resolution": [dose.dy / 4, dose.dx / 4], "interpolation_segments_between_planes": 2},
    )
    print(f"reference {t_ref:.1f} s; " + "; ".join(f"{k} {t:.1f} s" for k, (_, t) in tools.items()))
    print(f"{'ROI':16s} {'metric':8s} {'reference':>10s} " + " ".join(f"{k:>19s}" for k in tools))
    worst = {k: 0.0 for k in tools}
    above = {k: 0.0 for k in tools}
    for name, ref in reference.items():
        for m in (*METRICS, "Dmax"):
            value = ref.exact_max if m == "Dmax" else ref.metrics[m]
            cells = []
            for k, (rows, _) in tools.items():
                row = rows.get(name)
                if row is None or row.get(m) is None:
                    cells.append(f"{'-':>19s}")
                    continue
                diff = row[m] - value
                if m == "Dmax":
                    above[k] = max(above[k], diff)
                else:
                    worst[k] = max(worst[k], abs(diff))
                cells.append(f"{diff:+19.3f}")
            print(f"{name:16s} {m:8s} {value:10.3f} " + " ".join(cells))
    print(
        "largest |difference| over D2%, D50%, D98%, D0.03cc, Dmean (Gy): "
        + ", ".join(f"{k} {v:.3f}" for k, v in worst.items())
    )
    print("largest Dmax above the exact maximum (Gy): " + ", ".join(f"{k} {v:+.3f}" for k, v in above.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
