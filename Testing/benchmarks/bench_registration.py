"""Rigid MR-to-CT registration on the four synthetic phantoms: time and target registration error (TRE)
of the project's method against named baselines, side by side.

Methods
-------
* ``ours``: ``registration.rigid.register_rigid`` with its defaults -- Mattes MI, multi-resolution
  (4, 2, 1), masked to the target vertebra +- one level, translation grid search at the coarsest level.
* ``ours-nosearch``: the same without the grid search (an ablation).
* ``sitk-single``: SimpleITK's registration with the same metric and optimiser but neither mask nor
  pyramid (one level at full resolution, 5 % random samples of the whole CT).
* ``sitk-init``: SimpleITK's CenteredTransformInitializer (intensity moments) alone.

Starts: the phantom's own misregistration (identity start; 3-7 mm, 1.5-4 degrees) and ``--starts``
random starts exactly 10 mm and 5 degrees (about the GTV centroid) off the truth. TRE is taken at the
GTV centroid and the 8 corners of the target vertebral body (max over the 9 points). Goal: < 10 s per
case on 2 cores with TRE < 1 mm.

Run: ``.venv/bin/python Testing/benchmarks/bench_registration.py [--cases thoracic lumbar] [--starts 3]
[--contrast t1|t2] [--skip-baselines]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "SIBSpineSBRT"))

from SIBSpineSBRTLib.phantoms import cases as C  # noqa: E402
from SIBSpineSBRTLib.phantoms.mr import misregistration, rotation_angle_deg  # noqa: E402
from SIBSpineSBRTLib.registration import rigid as R  # noqa: E402


def _start_error(start, truth, centre):
    off = start @ np.linalg.inv(truth)
    return float(np.linalg.norm(off[:3, :3] @ centre + off[:3, 3] - centre)), rotation_angle_deg(off)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(C.CASE_NAMES), choices=C.CASE_NAMES)
    ap.add_argument("--starts", type=int, default=3, help="random 10 mm / 5 degree starts per case (plus the identity)")
    ap.add_argument("--contrast", choices=("t1", "t2"), default="t1")
    ap.add_argument("--skip-baselines", action="store_true", help="only ours and ours-nosearch")
    ap.add_argument("--seed", type=int, default=C.DEFAULT_SEED)
    args = ap.parse_args(argv)

    methods = {
        "ours": lambda im, key, start: (
            R.register_rigid(
                im["ct"], im["ct_geometry"], im[key], im["mr_geometry"], im["registration_roi"], start
            ).moving_to_fixed
        ),
        "ours-nosearch": lambda im, key, start: (
            R.register_rigid(
                im["ct"],
                im["ct_geometry"],
                im[key],
                im["mr_geometry"],
                im["registration_roi"],
                start,
                R.RigidSettings(search_steps=0),
            ).moving_to_fixed
        ),
    }
    if not args.skip_baselines:
        single = R.RigidSettings(
            shrink_factors=(1,), smoothing_sigmas_mm=(0.0,), sampling_percentages=(0.05,), search_steps=0
        )
        methods["sitk-single"] = lambda im, key, start: (
            R.register_rigid(
                im["ct"], im["ct_geometry"], im[key], im["mr_geometry"], None, start, single
            ).moving_to_fixed
        )
        methods["sitk-init"] = lambda im, key, start: R.initializer_only(
            im["ct"], im["ct_geometry"], im[key], im["mr_geometry"]
        )

    key = "mr_" + args.contrast
    summary = {m: {"t": [], "tre": []} for m in methods}
    print(f"{'case':9s} {'start':>14s} " + "  ".join(f"{m:>22s}" for m in methods))
    print(f"{'':9s} {'(mm, deg)':>14s} " + "  ".join(f"{'time s   TRE max mm':>22s}" for _ in methods))
    for name in args.cases:
        t0 = time.perf_counter()
        im = C.build_anatomy_images(name, args.seed)
        build = time.perf_counter() - t0
        truth = im["mr_to_ct"]
        points = np.array(list(im["landmarks"].values()))
        centre = im["landmarks"]["gtv_centroid"]
        rng = np.random.default_rng(1000 + C.CASE_NAMES.index(name))
        starts = [np.eye(4)] + [
            np.linalg.inv(misregistration(rng, 10.0, 5.0, centre)) @ truth for _ in range(args.starts)
        ]
        for start in starts:
            mm, deg = _start_error(start, truth, centre)
            cells = []
            for m, fn in methods.items():
                t1 = time.perf_counter()
                est = fn(im, key, start)
                dt = time.perf_counter() - t1
                tre = float(R.target_registration_error(est, truth, points).max())
                summary[m]["t"].append(dt)
                summary[m]["tre"].append(tre)
                cells.append(f"{dt:8.2f} {tre:10.2f}{'  ' if tre < 1 else ' !'}")
            print(f"{name:9s} {mm:6.1f}, {deg:4.1f}   " + "  ".join(f"{c:>22s}" for c in cells), flush=True)
        print(
            f"{'':9s} (phantom built in {build:.1f} s; MR {args.contrast.upper()}, true misregistration "
            f"{np.linalg.norm(truth[:3, 3]):.1f} mm / {rotation_angle_deg(truth):.1f} deg)"
        )
    print("\nsummary (all cases and starts):")
    for m, v in summary.items():
        ok = sum(t < 1.0 for t in v["tre"])
        print(
            f"  {m:14s} median {statistics.median(v['t']):6.2f} s  max {max(v['t']):6.2f} s   "
            f"TRE median {statistics.median(v['tre']):7.2f} mm  max {max(v['tre']):7.2f} mm   "
            f"TRE < 1 mm: {ok}/{len(v['tre'])}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
