"""DVH accuracy and speed: our engine beside the common voxel-centre method, and optionally dicompyler-core.

Run from the repository root:

    .venv/bin/python Testing/benchmarks/bench_dvh.py [--dicompyler-python PATH]

Baselines, run in the same process on the same data:

* "voxel-centre": what SlicerRT and dicompyler do in essence. The dose is interpolated trilinearly at each
  structure voxel centre (each voxel one point), histogrammed in 0.01 Gy bins from 0 Gy, and Dx read from
  the cumulative table by linear interpolation between rows (SlicerRT's ComputeDMetric); Dmean, Dmax and
  Dmin are the mean, maximum and minimum of the centre doses.
* dicompyler-core (optional): it needs pydicom < 3, so it runs in its own venv outside the repository,
  e.g. ``python3.11 -m venv /tmp/dicompyler-venv && /tmp/dicompyler-venv/bin/pip install
  dicompyler-core==0.5.6 pydicom==2.4.4``. The Nelms sphere and cone are written as RTSTRUCT + RTDOSE
  (pydicom, LPS) into a temporary folder; dicompyler's ``get_dvh`` reads them (as shipped: 1 cGy bins,
  dose-grid pixel centres, dose taken at the contour plane only, Dx = the bin with the nearest cumulative
  volume) and its metrics are compared with ours. On a dose grid as coarse as the contour spacing it sees
  few distinct doses, and its Dx lands on the lower edge of a plateau (e.g. D1% = 22 Gy, truth 26.6 Gy).

Truths: the exact DVH of the voxelised structure (labelmaps) or of the contour stack under the half-slice
slab convention, and the smooth Nelms solid (``Testing/analytic_dvh.py``). Times are the best of several
runs after a warm-up; ratios are ours / baseline. Our times include the metrics, evaluated together
(``DVH.metrics``); dicompyler-core's cover ``get_dvh`` only.

Sections: ``labelmap`` (voxelised spheres, linear dose), ``contours`` (Nelms solids; their doses are linear,
where our sampling needs no cut on the dose grid's planes, so the same structures are also timed in a
curved dose), ``speed`` (a case of six structures: the goal is <= 1 s for all of them) and ``curved``
(adaptive sampling against an 8x8x8-sub-cube reference and the former fixed 2x2x3 supersampling, in
steep curved doses: the cord PRV of the tests and the demo case).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..", "SIBSpineSBRT")]

from analytic_dvh import (  # noqa: E402
    ExtendedSolidTruth,
    SlabTruth,
    VoxelisedTruth,
    contour_planes,
    nelms_shapes,
    slab_planes,
)

from SIBSpineSBRTLib.dose.analytic import sphere_fraction  # noqa: E402
from SIBSpineSBRTLib.dose.contours import ContourStructure  # noqa: E402
from SIBSpineSBRTLib.dose.dvh import compute_dvh  # noqa: E402
from SIBSpineSBRTLib.dose.grid import DoseGrid  # noqa: E402
from SIBSpineSBRTLib.geometry.grid import ImageGeometry  # noqa: E402
from SIBSpineSBRTLib.geometry.masks import Mask  # noqa: E402

CT_SPACING = (0.98, 0.98, 1.25)
REPEATS = 5


def best_time(fn, repeats=REPEATS):
    result = fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


def grid_points(g: ImageGeometry) -> np.ndarray:
    k, j, i = np.indices(g.shape)
    return g.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))


# -- the voxel-centre baseline --------------------------------------------------------------------------


class VoxelCentreDVH:
    """Dose at voxel centres, 0.01 Gy histogram, SlicerRT-style reading of the cumulative table."""

    def __init__(self, mask: Mask, dose: DoseGrid, step: float = 0.01):
        k, j, i = np.nonzero(mask.array)
        d, inside = dose.sample(mask.geometry.ijk_to_ras_points(np.stack([i, j, k], axis=1)))
        self.d = d[inside]
        self.volume_cc = len(self.d) * mask.geometry.voxel_volume_cc
        n_bins = int(np.ceil(self.d.max() / step)) + 2
        counts = np.bincount(np.floor(self.d / step).astype(np.int64), minlength=n_bins)
        self.levels = np.arange(n_bins + 1) * step
        below = np.concatenate([[0], np.cumsum(counts)])
        self.percent = 100.0 * (1 - below / len(self.d))  # % of voxels with dose >= level

    def dose_at_percent(self, target: float) -> float:
        v = self.percent
        if target >= v[0]:
            return 0.0
        i = int(np.nonzero(v > target)[0].max())
        if i + 1 >= len(v):
            return float(self.levels[-1])
        return float(self.levels[i] + (self.levels[i + 1] - self.levels[i]) * (v[i] - target) / (v[i] - v[i + 1]))

    def metric(self, name: str) -> float:
        if name == "Dmean":
            return float(self.d.mean())
        if name == "Dmax":
            return float(self.d.max())
        if name == "Dmin":
            return float(self.d.min())
        if name.endswith("cc"):
            return self.dose_at_percent(100 * float(name[1:-2]) / self.volume_cc)
        return self.dose_at_percent(float(name[1:-1]))


# -- labelmap spheres -----------------------------------------------------------------------------------


def sphere_mask(radius, centre):
    n = [int(np.ceil((radius + 2) / s)) * 2 + 1 for s in CT_SPACING]
    origin = np.asarray(centre) - np.array([0.23, -0.41, 0.37]) - np.array(CT_SPACING) * (np.array(n) // 2)
    g = ImageGeometry((n[2], n[1], n[0]), tuple(origin), CT_SPACING)
    inside = np.linalg.norm(grid_points(g) - np.asarray(centre), axis=1) <= radius
    return Mask(inside.reshape(g.shape), g, f"sphere r={radius:g} mm")


def linear_dose(gradient, centre, spacing=2.5, half=16.0, d0=30.0):
    n = int(np.ceil(2 * half / spacing)) + 1
    origin = np.asarray(centre) - (n - 1) / 2 * spacing + np.array([0.7, -1.1, 0.4])
    g = ImageGeometry((n, n, n), tuple(origin), (spacing,) * 3)
    return DoseGrid((d0 + (grid_points(g) - centre) @ np.asarray(gradient)).reshape(g.shape), g, "linear")


def smooth_sphere_metric(name, radius, d0=30.0):
    vol = 4 / 3 * np.pi * radius**3 / 1000
    if name == "Dmean":
        return d0
    x = 0.03 / vol if name == "D0.03cc" else float(name[1:-1]) / 100
    lo, hi = d0 - radius, d0 + radius
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sphere_fraction(mid, radius, d0, 1.0) >= x else (lo, mid)
    return lo


def labelmap_section():
    print("\n== Labelmap spheres on 0.98 x 0.98 x 1.25 mm, 1 Gy/mm, 2.5 mm dose grid (offset origin) ==")
    print("truth = exact DVH of the voxelised sphere; smooth = Nelms sphere formula (the voxelisation differs)")
    centre = np.array([3.1, -12.4, 7.7])
    gradients = {"AP": (0, 1, 0), "SI": (0, 0, 1), "oblique": (1 / 3, -2 / 3, 2 / 3)}
    metrics = ("D0.03cc", "D2%", "D50%", "D98%", "Dmean")
    header = (
        f"{'case':22s} {'metric':8s} {'truth':>8s} {'smooth':>8s} {'ours':>8s} {'err':>8s} {'baseline':>8s} {'err':>8s}"
    )
    worst = {"ours": 0.0, "baseline": 0.0}
    timing = []
    for radius in (10.0, 3.0):
        mask = sphere_mask(radius, centre)
        print(f"\n{mask.name}: {mask.voxel_count} voxels, {mask.volume_cc:.4f} cc")
        print(header)
        for label, g in gradients.items():
            dose = linear_dose(g, centre)
            truth = VoxelisedTruth(
                mask.geometry.ijk_to_ras_points(np.stack(np.nonzero(mask.array)[::-1], axis=1)),
                np.eye(3),
                CT_SPACING,
                g,
                30.0,
                centre,
            )
            ours, t_ours = best_time(lambda mask=mask, dose=dose: _metrics(compute_dvh(mask, dose), metrics))
            base, t_base = best_time(lambda mask=mask, dose=dose: _metrics(VoxelCentreDVH(mask, dose), metrics))
            timing.append((f"{mask.name} {label}", t_ours, t_base))
            for m in metrics:
                t = truth.metric(m)
                eo, eb = ours[m] - t, base[m] - t
                worst["ours"] = max(worst["ours"], abs(eo))
                worst["baseline"] = max(worst["baseline"], abs(eb))
                print(
                    f"{mask.name + ' ' + label:22s} {m:8s} {t:8.3f} {smooth_sphere_metric(m, radius):8.3f} "
                    f"{ours[m]:8.3f} {eo:+8.4f} {base[m]:8.3f} {eb:+8.4f}"
                )
    print(
        f"\nlargest |error| vs the voxelised truth: ours {worst['ours']:.4f} Gy, "
        f"voxel-centre {worst['baseline']:.4f} Gy"
    )
    print(f"\n{'case':28s} {'ours ms':>8s} {'base ms':>8s} {'ratio':>6s}")
    for label, a, b in timing:
        print(f"{label:28s} {a * 1e3:8.1f} {b * 1e3:8.1f} {a / b:6.2f}")


def _metrics(dvh, names):
    if hasattr(dvh, "metrics"):  # ours: all metrics of a structure together
        return dvh.metrics(names)
    return {m: dvh.metric(m) for m in names}


# -- contours: the Nelms sphere and cone, with dicompyler-core ------------------------------------------


def write_rtstruct(path, name, planes_ras):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "RTSTRUCT", "Phantom^Nelms", "NELMS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.StructureSetLabel = "bench"
    roi = Dataset()
    roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = 1, name, ds.FrameOfReferenceUID
    ds.StructureSetROISequence = [roi]
    contours = []
    for pts in planes_ras:
        c = Dataset()
        lps = pts * np.array([-1.0, -1.0, 1.0])
        c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(lps)
        c.ContourData = [f"{v:.4f}" for v in lps.ravel()]
        contours.append(c)
    rc = Dataset()
    rc.ReferencedROINumber, rc.ROIDisplayColor, rc.ContourSequence = 1, [255, 0, 0], contours
    ds.ROIContourSequence = [rc]
    obs = Dataset()
    obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType, obs.ROIInterpreter = 1, 1, "PTV", ""
    ds.RTROIObservationsSequence = [obs]
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return ds.FrameOfReferenceUID


def write_rtdose(path, dose: DoseGrid, frame_uid):
    """An axis-aligned RAS dose grid as an LPS RTDOSE (rows along -y RAS = +y LPS, columns along -x RAS).

    Not caseio.dicom_write.write_rtdose: that keeps the grid's own orientation (here IOP -1,0,0,0,-1,0), which
    dicompyler-core's interpolation misreads; planning systems write this head-first-supine layout."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    g = dose.geometry
    arr = dose.array[:, ::-1, ::-1]  # i: RAS +x -> LPS +x means reversing; j likewise
    nk, nj, ni = arr.shape
    first = np.array(g.ijk_to_ras_points(np.array([[ni - 1, nj - 1, 0]]))[0]) * np.array([-1.0, -1.0, 1.0])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "RTDOSE", "Phantom^Nelms", "NELMS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), frame_uid
    ds.ImagePositionPatient = [f"{v:.4f}" for v in first]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [g.spacing[1], g.spacing[0]]
    ds.SliceThickness = g.spacing[2]
    ds.GridFrameOffsetVector = [f"{k * g.spacing[2]:.4f}" for k in range(nk)]
    ds.Rows, ds.Columns, ds.NumberOfFrames = nj, ni, nk
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    scaling = float(arr.max()) / 4.0e9
    ds.DoseGridScaling = f"{scaling:.10g}"
    ds.PixelData = np.round(arr / float(ds.DoseGridScaling)).astype("<u4").tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


DICOMPYLER_SCRIPT = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import logging; logging.disable(logging.CRITICAL)
from dicompylercore import dvhcalc
names = json.loads(sys.argv[3])
options = json.loads(sys.argv[4])  # {} as shipped, or interpolation_resolution / _segments_between_planes
if "interpolation_resolution" in options:
    options["interpolation_resolution"] = tuple(options["interpolation_resolution"])
best = None
for _ in range(2 if options else 3):
    t0 = time.perf_counter()
    dvh = dvhcalc.get_dvh(sys.argv[1], sys.argv[2], 1, **options)
    best = min(best or 1e9, time.perf_counter() - t0)
out = {"time": best, "volume": float(dvh.volume), "Dmean": float(dvh.mean), "Dmax": float(dvh.max),
       "Dmin": float(dvh.min)}
for n in names:
    out[n] = float(dvh.statistic(n.replace("%", "")).value)
print(json.dumps(out))
"""


def contour_section(dicompyler_python):
    print("\n== Planar contours (Nelms solids, 24 mm across), 1 Gy/mm, 16 Gy at the centre ==")
    print("slab = exact DVH of the contour stack, half-slice end caps; smooth = the smooth solid extended half a")
    print("slice beyond its end contours (Nelms); criterion 3 % of the smooth value")
    shapes = nelms_shapes()
    metrics = ("D99%", "D95%", "D50%", "D5%", "D1%", "D0.03cc", "Dmean", "Dmax", "Dmin")
    have_dpl = bool(dicompyler_python) and os.path.exists(dicompyler_python)
    if dicompyler_python and not have_dpl:
        print(f"(dicompyler python {dicompyler_python} not found: dicompyler-core skipped)")
    timing = []
    for shape_name, spacing, axis in [
        ("sphere", 3.0, "AP"),
        ("sphere", 3.0, "SI"),
        ("sphere", 1.0, "AP"),
        ("cone_SI_apex_sup", 2.0, "SI"),
        ("rotated_cone_AP", 3.0, "SI"),
    ]:
        shape = shapes[shape_name]
        planes = contour_planes(shape, spacing)
        rings = [np.column_stack([p, np.full(len(p), z)]) for z, p in planes]
        structure = ContourStructure.from_polygons(shape_name, rings)
        c = np.arange(-15, 15 + spacing / 2, spacing)
        g = ImageGeometry((len(c),) * 3, (c[0],) * 3, (spacing,) * 3)
        dose = DoseGrid((16 + grid_points(g)[:, 1 if axis == "AP" else 2]).reshape(g.shape), g, "linear")
        slab = SlabTruth(slab_planes(planes, spacing), 1 if axis == "AP" else 2, 16.0)
        smooth = ExtendedSolidTruth(shape, planes[0][0], planes[-1][0], spacing / 2, axis)
        ours, t_ours = best_time(lambda structure=structure, dose=dose: _metrics(compute_dvh(structure, dose), metrics))
        vol_ours = structure.volume_cc
        x, y, z = grid_points(g).T
        bent = DoseGrid(
            (16 + (y if axis == "AP" else z) + 0.03 * (x * x + y * y + z * z) + 2 * np.sin(x / 4)).reshape(g.shape),
            g,
            "curved",
        )
        _, t_curved = best_time(lambda structure=structure, dose=bent: _metrics(compute_dvh(structure, dose), metrics))
        dpl = dpi = None
        if have_dpl:
            # as shipped, and with its interpolation (in-plane dose at spacing/4, 2 segments between planes)
            interp = {
                "interpolation_resolution": [spacing / 4, spacing / 4],
                "interpolation_segments_between_planes": 2,
            }
            with tempfile.TemporaryDirectory() as tmp:
                rs, rd = os.path.join(tmp, "rs.dcm"), os.path.join(tmp, "rd.dcm")
                frame = write_rtstruct(rs, shape_name, rings)
                write_rtdose(rd, dose, frame)
                results = []
                for options in ({}, interp):
                    run = subprocess.run(
                        [
                            dicompyler_python,
                            "-c",
                            DICOMPYLER_SCRIPT,
                            rs,
                            rd,
                            json.dumps(list(metrics[:6])),
                            json.dumps(options),
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if run.returncode == 0:
                        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
                    else:
                        print("dicompyler-core failed:", run.stderr.strip().splitlines()[-1:])
                        results.append(None)
                dpl, dpi = results
        label = f"{shape_name} {spacing:g} mm {axis}"
        print(
            f"\n{label}: volume slab {slab.volume_cc:.4f} cc, smooth {smooth.volume_cc:.4f}, ours {vol_ours:.4f}"
            + (f", dicompyler {dpl['volume']:.4f}" if dpl else "")
        )
        print(
            f"{'metric':8s} {'smooth':>8s} {'slab':>8s} {'ours':>8s} {'ours-slab':>9s} {'ours %':>7s}"
            + (f" {'dicompyler':>10s} {'dpl %':>7s}" if dpl else "")
            + (f" {'interp.':>10s} {'int %':>7s}" if dpi else "")
        )
        for m in metrics:
            sm, sl, o = smooth.metric(m), slab.metric(m), ours[m]
            line = f"{m:8s} {sm:8.3f} {sl:8.3f} {o:8.3f} {o - sl:+9.4f} {100 * (o - sm) / sm:+7.2f}"
            for d in (dpl, dpi):
                if d and m in d:
                    line += f" {d[m]:10.3f} {100 * (d[m] - sm) / sm:+7.2f}"
            print(line)
        timing.append((label, t_ours, t_curved, dpl["time"] if dpl else None, dpi["time"] if dpi else None))
    print("\nTimes (ms). Ratio = dicompyler time / ours (> 1: ours is faster). 'interp.' = dicompyler with")
    print("interpolation_resolution = spacing/4 and 2 segments between planes, its more accurate mode.")
    print("'curved': ours on the same structure in a curved dose (its boxes are cut on the dose grid's planes).")
    print(
        f"{'case':28s} {'ours':>8s} {'curved':>7s} {'dicompyler':>11s} {'ratio':>6s} {'interp.':>9s} {'ratio':>6s}"
        f" {'curved':>6s}"
    )
    nan = float("nan")
    for label, a, a_bent, b, c in timing:
        print(
            f"{label:28s} {a * 1e3:8.1f} {a_bent * 1e3:7.1f} {(b or nan) * 1e3:11.1f} {(b / a if b else nan):6.2f}"
            f" {(c or nan) * 1e3:9.1f} {(c / a if c else nan):6.2f} {(c / a_bent if c else nan):6.2f}"
        )
    if any(c for _, _, _, _, c in timing):
        print("\nPer structure, dicompyler-core with interpolation / ours (goal >= 5x):")
        for label, a, a_bent, _, c in timing:
            if c:
                verdict = "met" if c / a >= 5 else "NOT met"
                print(f"  {label:28s} {c / a:6.1f}x (goal >= 5x: {verdict}); in a curved dose {c / a_bent:6.1f}x")


# -- speed on a case ------------------------------------------------------------------------------------


def speed_section():
    print("\n== Speed: a 70 cc PTV_Eval on 0.98 x 0.98 x 1.25 mm, 2.5 mm dose; six structures of a case ==")
    g = ImageGeometry((64, 80, 80), (-38.7, -39.2, -40.0), CT_SPACING)
    p = grid_points(g)
    ell = ((p[:, 0] / 30) ** 2 + (p[:, 1] / 22) ** 2 + (p[:, 2] / 26) ** 2 <= 1).reshape(g.shape)
    dg = ImageGeometry((36, 36, 36), (-43.3, -44.1, -45.6), (2.5, 2.5, 2.5))
    x, y, z = grid_points(dg).T
    dose = DoseGrid(np.maximum(0, 36 - 0.01 * (x**2 + 2 * y**2 + z**2) + 3 * np.sin(x / 7)).reshape(dg.shape), dg)
    structures = {
        "PTV_Eval": ell,
        "GTV": ell & (p[:, 1] > 0).reshape(g.shape),
        "CTV": ell & (p[:, 0] > 5).reshape(g.shape),
        "SpinalCord_PRV": (np.hypot(p[:, 0], p[:, 1] + 30) <= 5).reshape(g.shape),
        "ThecalSac": (np.hypot(p[:, 0], p[:, 1] + 30) <= 7).reshape(g.shape),
        "Esophagus": (np.hypot(p[:, 0] - 15, p[:, 1] - 30) <= 8).reshape(g.shape),
    }
    names = ("D0.03cc", "D2%", "D50%", "D90%", "D98%", "Dmean")
    total = total_base = 0.0
    print(f"{'structure':16s} {'cc':>7s} {'voxels':>9s} {'samples':>9s} {'ours ms':>8s} {'base ms':>8s} {'ratio':>6s}")
    for name, arr in structures.items():
        mask = Mask(arr, g, name)
        dvh, t_ours = best_time(lambda mask=mask: _with_metrics(compute_dvh(mask, dose), names), repeats=3)
        _, t_base = best_time(lambda mask=mask: _with_metrics(VoxelCentreDVH(mask, dose), names), repeats=3)
        total += t_ours
        total_base += t_base
        print(
            f"{name:16s} {mask.volume_cc:7.2f} {mask.voxel_count:9d} {len(dvh.doses):9d} {t_ours * 1e3:8.1f} "
            f"{t_base * 1e3:8.1f} {t_ours / t_base:6.2f}"
        )
    print(f"{'all six':46s} {total * 1e3:8.1f} {total_base * 1e3:8.1f} {total / total_base:6.2f}")
    print(f"\ncase ({len(structures)} structures): {total:.2f} s (goal <= 1 s: {'met' if total <= 1.0 else 'NOT met'})")


def _with_metrics(dvh, names):
    _metrics(dvh, names)
    return dvh


# -- adaptive sampling in curved doses ------------------------------------------------------------------


def cord_prv_in_curved_dose():
    """The cord PRV (about 2.5 cc) and steep curved fall-off (3 Gy/mm at 20 Gy, a hot spot) of test_dvh."""
    lps = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))
    g = ImageGeometry((37, 21, 21), (9.8, 1.1, -22.5), CT_SPACING, lps)
    p = grid_points(g)
    cord = Mask(((np.hypot(p[:, 0], p[:, 1] + 9.0) <= 4.5) & (np.abs(p[:, 2]) <= 20.0)).reshape(g.shape), g, "CordPRV")
    dg = ImageGeometry((28, 28, 28), (-33.7, -41.3, -34.1), (2.5, 2.5, 2.5))
    x, y, z = grid_points(dg).T
    d = 30 / (1 + np.exp(-(y + 2.0) / 2.5)) + 6 * np.exp(-((x - 1) ** 2 + (y + 5) ** 2 + (z - 4) ** 2) / 30)
    return cord, DoseGrid(np.maximum(d, 0).reshape(dg.shape), dg, "curved")


def exact_extremes(mask: Mask, dose: DoseGrid):
    """Dmax and Dmin of the trilinear dose over the part of a labelmap inside the dose grid, exactly (grids
    parallel, voxels at most one dose step wide): on a box inside one dose cell the dose is multilinear, so
    it peaks at a corner, whose coordinate along each axis is a voxel face, a plane of dose voxel centres or
    the grid's edge."""
    m = dose.geometry.ras_to_ijk @ mask.geometry.ijk_to_ras
    lin = m[:3, :3]
    assert np.all((np.abs(lin) > 1e-9).sum(axis=1) == 1), "the grids must be parallel"
    k, j, i = np.nonzero(mask.array)
    centres = np.stack([i, j, k], axis=1) @ lin.T + m[:3, 3]
    half = 0.5 * np.abs(lin).sum(axis=1)
    assert np.all(half <= 0.5), "voxels wider than a dose step"
    nk, nj, ni = dose.geometry.shape
    last = np.array([ni - 1, nj - 1, nk - 1])
    lo = np.clip(centres - half, -0.5, last + 0.5)
    hi = np.clip(centres + half, -0.5, last + 0.5)
    inside = np.all(lo < hi, axis=1)
    lo, hi = lo[inside], hi[inside]
    plane = np.floor(lo) + 1
    plane = np.where((plane < hi) & (plane >= 0) & (plane <= last), plane, lo)
    choices = np.stack([lo, plane, hi], axis=2)  # (voxels, axis, 3 coordinates)
    top, bottom = -np.inf, np.inf
    for a in range(3):
        for b in range(3):
            for c in range(3):
                d, _, _ = dose.interpolate_index(np.stack([choices[:, 0, a], choices[:, 1, b], choices[:, 2, c]], 1))
                top, bottom = max(top, float(d.max())), min(bottom, float(d.min()))
    return top, bottom


def curved_section():
    print("\n== Adaptive sampling in curved doses: against 8x8x8 sub-cubes per voxel, and the former 2x2x3 ==")
    from SIBSpineSBRTLib.geometry.margins import Margins, expand
    from SIBSpineSBRTLib.phantoms.demo import build_demo_case

    case = build_demo_case()
    dose = DoseGrid(case.dose_gy, case.dose_geometry, "demo")
    masks = [Mask(a, case.ct_geometry, n) for n, a in case.segments.items()]
    ctv = next(m for m in masks if m.name == "CTV")
    ptv = expand(ctv, Margins.axial_si(2, 5)).array & ~case.segments["SpinalCanal"]
    pairs = [cord_prv_in_curved_dose()] + [(m, dose) for m in masks + [Mask(ptv, case.ct_geometry, "PTV_Eval")]]
    names = ("D0.03cc", "D2%", "D50%", "D98%", "Dmean", "Dmax", "Dmin")
    print("errors (Gy): Dx and Dmean against the 8x8x8 reference, Dmax and Dmin against the exact extremes of")
    print("the trilinear dose over the voxels; 'adaptive' is the default, '2x2x3' the former default")
    print(f"{'structure':12s} {'method':9s} {'samples':>8s} {'ms':>6s} " + " ".join(f"{n:>8s}" for n in names))
    worst = {"adaptive": {n: 0.0 for n in names}, "2x2x3": {n: 0.0 for n in names}}
    total = {"adaptive": 0.0, "2x2x3": 0.0}
    for mask, dz in pairs:
        ref = compute_dvh(mask, dz, (8, 8, 8)).metrics(names)
        ref["Dmax"], ref["Dmin"] = exact_extremes(mask, dz)
        for method, n in (("adaptive", None), ("2x2x3", (2, 2, 3))):
            dvh, t = best_time(lambda mask=mask, dz=dz, n=n: _with_metrics(compute_dvh(mask, dz, n), names), repeats=3)
            values = dvh.metrics(names)
            total[method] += t
            errors = {k: values[k] - ref[k] for k in names}
            for k in names:
                worst[method][k] = max(worst[method][k], abs(errors[k]))
            print(
                f"{mask.name:12s} {method:9s} {len(dvh.doses):8d} {t * 1e3:6.1f} "
                + " ".join(f"{errors[k]:+8.4f}" for k in names)
            )
    for method in ("adaptive", "2x2x3"):
        print(
            f"largest |error|, {method:8s} ({total[method]:.2f} s in all): "
            + ", ".join(f"{k} {v:.4f}" for k, v in worst[method].items())
        )
    dx = max(v for k, v in worst["adaptive"].items() if k not in ("Dmax", "Dmin"))
    print(f"adaptive Dx and Dmean within {dx:.4f} Gy of the 8x8x8 reference (goal <= 0.02 Gy)")


def ensure_dicompyler_venv() -> str:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from dicompyler_env import dicompyler_python

    return dicompyler_python()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dicompyler-python", default=None, help="python of a venv with dicompyler-core")
    parser.add_argument(
        "--dicompyler",
        action="store_true",
        help="create (once) a pinned dicompyler-core venv under ~/.cache (Testing/dicompyler_env.py) and use it",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["labelmap", "contours", "speed", "curved"])
    args = parser.parse_args(argv)
    if args.dicompyler and not args.dicompyler_python:
        args.dicompyler_python = ensure_dicompyler_venv()
    warnings.simplefilter("ignore")
    if "labelmap" not in args.skip:
        labelmap_section()
    if "contours" not in args.skip:
        contour_section(args.dicompyler_python)
    if "speed" not in args.skip:
        speed_section()
    if "curved" not in args.skip:
        curved_section()
    return 0


if __name__ == "__main__":
    sys.exit(main())
