"""Cross-check an exported RTSTRUCT with dicompyler-core, run in its own environment.

dicompyler-core (0.5.6) needs pydicom < 3, so it cannot share the project's venv. By default the pinned venv
of Testing/dicompyler_env.py is used (made on first use); or make a throwaway one outside the repository
with the same pins:

    python3.11 -m venv /tmp/dicompyler-venv
    /tmp/dicompyler-venv/bin/pip install dicompyler-core==0.5.6 pydicom==2.4.4 scikit-image==0.25.2 shapely==2.1.2

then, from the repository root with the project's Python 3.11 venv (this script loads the case into an MRML
scene, which needs slicer-core; the library and the fixtures themselves work with pydicom 2.4 and 3.0):

    .venv/bin/python Testing/benchmarks/dicompyler_crosscheck.py --dicompyler-python /tmp/dicompyler-venv/bin/python

For each patient orientation (HFS, FFS) it writes the synthetic case (Testing/dicom_fixtures.py), runs the
``sibspine volumes --dicom ... --out volumes.dcm`` step, and writes an RTDOSE on the CT grid (dicompyler
measures a structure's volume by the dose-grid pixel centres inside its contours, times the contour
spacing). dicompyler then reads the exported RTSTRUCT + RTDOSE; the script compares ROI names and volumes:

* ours: the mask volume (voxel count x voxel volume) of each ROI on the CT grid;
* dicompyler DVH volume (``dvhcalc.get_dvh(...).volume``), which must agree within 2%;
* the contour-slab volume: each plane's polygons as dicompyler parsed them, combined even-odd with shapely,
  times the plane spacing, which must agree within 2% with our own contour-slab volume of the same ROI
  (``dose.contours``; for the derived ROIs it also equals the mask volume, as the contours are traced
  area-preserving; the clinic's copied ROIs are analytic polygons, whose voxel masks differ by sampling);
* dicompyler's own contour-area volume (``DicomParser.CalculateStructureVolume``), printed for information
  only: it gives the two end planes half their area (rounded down), so it is smaller by design.

Exit code 0 when every ROI name matches and the DVH and slab volumes are within 2%. Prints no patient data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "Testing"), str(REPO / "SIBSpineSBRT")]

DICOMPYLER_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import logging; logging.disable(logging.CRITICAL)
from dicompylercore import dicomparser, dvhcalc
rs_path, dose_path = sys.argv[1], sys.argv[2]
rs = dicomparser.DicomParser(rs_path)
out = []
for number, s in sorted(rs.GetStructures().items()):
    planes = rs.GetStructureCoordinates(number)
    thickness = rs.CalculatePlaneThickness(planes)
    row = {"number": int(number), "name": s["name"], "planes": len(planes), "thickness": float(thickness)}
    try:
        row["area_volume_cc"] = float(rs.CalculateStructureVolume(planes, thickness))
    except Exception as exc:
        row["area_volume_cc"] = None; row["area_error"] = repr(exc)
    # contour areas as dicompyler parsed them, combined even-odd with shapely, times the plane spacing
    from shapely.geometry import Polygon
    slab = 0.0
    for z, contours in planes.items():
        region = None
        for c in contours:
            if c["type"] != "CLOSED_PLANAR":
                continue
            p = Polygon([pt[0:2] for pt in c["data"]]).buffer(0)
            region = p if region is None else region.symmetric_difference(p)
        slab += 0.0 if region is None else region.area
    row["slab_volume_cc"] = slab * thickness / 1000.0
    dvh = dvhcalc.get_dvh(rs_path, dose_path, number)
    row["dvh_volume_cc"] = float(dvh.volume)
    out.append(row)
print(json.dumps(out))
"""


def run_orientation(work: Path, orientation: str, dicompyler_python: str, level: str = "T8"):
    import dicom_fixtures as fx

    from SIBSpineSBRTLib.caseio.export import volumes_from_dicom
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks
    from SIBSpineSBRTLib.mrml import segmentations as segs

    grid = fx.Grid(**{**fx.CT_GRID.__dict__, "iop": fx.ORIENTATIONS[orientation]})
    folder = work / f"case_{orientation}"
    case = fx.make_case(folder, ct_grid=grid, with_mr=False)
    out = work / f"volumes_{orientation}.dcm"
    result = volumes_from_dicom(folder, level, out)
    ct = result.case.ct_series
    ours = segs.read_segments(result.case.segmentation, geometry=ct.geometry)
    ours.update({n: v.mask for n, v in result.volumes.items()})
    exported = read_rtstruct(out)
    reread = structure_set_masks(exported, ct.geometry)
    # our own contour-slab volume of each exported ROI (polygon areas, even-odd, times the plane spacing)
    polygon_cc = {}
    for roi in exported.rois:
        try:
            polygon_cc[roi.name] = roi.to_contour_structure(slice_spacing_mm=grid.slice_step).volume_cc
        except Exception:  # the contour DVH engine is optional here
            polygon_cc[roi.name] = float("nan")
    # a dose on the CT grid, so dicompyler's pixel-centre volumes use the CT's pixels
    dose = np.stack([fx.dose_function(grid.lps(k)) for k in range(grid.slices)])
    dose_path = work / f"dose_ct_grid_{orientation}.dcm"
    fx.write_rtdose(dose_path, grid, dose, case.ct.study_uid, case.ct.frame_uid)
    run = subprocess.run(
        [dicompyler_python, "-c", DICOMPYLER_SCRIPT, str(out), str(dose_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode != 0:
        raise SystemExit(f"dicompyler-core failed:\n{run.stderr[-3000:]}")
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    rows = []
    names_ours = list(reread)
    for (name, mask), row in zip(ours.items(), theirs):
        rows.append(
            {
                "name": name,
                "dicompyler_name": row["name"],
                "ours_cc": mask.volume_cc,
                "reimport_cc": reread[name].volume_cc if name in reread else float("nan"),
                "polygon_cc": polygon_cc.get(name, float("nan")),
                "dvh_cc": row["dvh_volume_cc"],
                "area_cc": row["area_volume_cc"],
                "slab_cc": row["slab_volume_cc"],
            }
        )
    return names_ours, [r["name"] for r in theirs], rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--dicompyler-python",
        default=None,
        help="python of a venv with dicompyler-core (default: the pinned venv of Testing/dicompyler_env.py)",
    )
    p.add_argument("--work", help="folder for the generated files (default: a temporary folder)")
    p.add_argument("--tolerance", type=float, default=2.0, help="allowed DVH-volume difference in %% (default 2)")
    args = p.parse_args(argv)
    if args.dicompyler_python is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from dicompyler_env import dicompyler_python

        args.dicompyler_python = dicompyler_python()
    try:
        import slicer  # noqa: F401
    except ImportError:
        print("This cross-check loads the case into MRML and needs slicer-core: run it with the project's .venv.")
        return 2
    if not Path(args.dicompyler_python).exists():
        print(f"No python at {args.dicompyler_python}; see the module docstring to build the dicompyler venv.")
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="dicompyler-xcheck-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    for orientation in ("HFS", "FFS"):
        ours, theirs, rows = run_orientation(work, orientation, args.dicompyler_python)
        same = ours == theirs
        ok &= same
        print(f"\n{orientation}: ROI names {'match' if same else 'DIFFER'}: {theirs}")
        print(
            f"{'ROI':<18}{'mask cc':>9}{'re-import':>10}{'dicompyler DVH':>15}{'diff %':>7}"
            f"{'our contours':>13}{'shapely slabs':>14}{'diff %':>7}{'dicompyler area':>16}"
        )
        for r in rows:
            diff = 100.0 * (r["dvh_cc"] - r["ours_cc"]) / r["ours_cc"]
            slab_diff = 100.0 * (r["slab_cc"] - r["polygon_cc"]) / r["polygon_cc"]
            ok &= abs(diff) <= args.tolerance and r["name"] == r["dicompyler_name"]
            ok &= bool(np.isnan(slab_diff) or abs(slab_diff) <= args.tolerance)
            area = "-" if r["area_cc"] is None else f"{r['area_cc']:.3f}"
            print(
                f"{r['name']:<18}{r['ours_cc']:>9.3f}{r['reimport_cc']:>10.3f}{r['dvh_cc']:>15.3f}{diff:>7.2f}"
                f"{r['polygon_cc']:>13.3f}{r['slab_cc']:>14.3f}{slab_diff:>7.2f}{area:>16}"
            )
        derived = [r for r in rows if r["name"] in ("PTV", "PTV_Eval", "SpinalCord_PRV02")]
        worst = max(abs(r["polygon_cc"] - r["ours_cc"]) / r["ours_cc"] * 100 for r in derived)
        print(f"derived ROIs: contour volume vs mask volume differs by at most {worst:.3f}%")
    verdict = "PASS" if ok else "FAIL"
    print(f"\n{verdict}: names equal; dicompyler's DVH and contour volumes within {args.tolerance}% of ours.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
