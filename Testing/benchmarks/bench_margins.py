"""Time the exact margins against Slicer's Margin filter and a scipy EDT, in one process.

Run: .venv/bin/python Testing/benchmarks/bench_margins.py

Clinical grid: 512 x 512 x 120 voxels of 0.98 x 0.98 x 1.25 mm. Structures: a 60 cc box CTV (PTV 2/2/5 mm
and an isotropic 2 mm PTV) and a cord (cylinder of radius 5 mm, 80 mm long) with a 2 mm PRV; their
Minkowski volumes are analytic. "ours, full grid" is the whole call on the clinical grid (bounding box,
crop, dilation, output mask of 31 M voxels); "ours, crop" is the same call on a grid cropped to the
bounding box plus the margin, where the baselines run too: vtkITKImageMargin, the filter of Slicer's
Margin effect (isotropic only, distance between voxel centres), and scipy's EDT on the mask (per-axis
sampling scaled by the margins, also between voxel centres). Times are the best of several runs after a warm-up.
"""

import math
import os
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "SIBSpineSBRT"))

from SIBSpineSBRTLib.geometry import margins as margins_module  # noqa: E402
from SIBSpineSBRTLib.geometry.grid import ImageGeometry  # noqa: E402
from SIBSpineSBRTLib.geometry.margins import Margins, expand  # noqa: E402
from SIBSpineSBRTLib.geometry.masks import Mask  # noqa: E402

SPACING = (0.98, 0.98, 1.25)  # si, sj, sk
SHAPE = (120, 512, 512)  # nk, nj, ni
REPEATS = 7


def best_time(fn, repeats=REPEATS):
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def steiner_box(a, b, c, rx, ry, rz):
    return (
        a * b * c
        + 2 * (b * c * rx + a * c * ry + a * b * rz)
        + math.pi * (a * ry * rz + b * rx * rz + c * rx * ry)
        + 4 / 3 * math.pi * rx * ry * rz
    )


def steiner_cylinder(a, length, m):
    return (
        math.pi * a * a * length
        + (2 * math.pi * a * length + 2 * math.pi * a * a) * m
        + (math.pi * length + math.pi**2 * a) * m * m
        + 4 / 3 * math.pi * m**3
    )


def box_ctv(geometry):
    arr = np.zeros(SHAPE, bool)
    ni, nj, nk = 41, 41, 30  # 40.2 x 40.2 x 37.5 mm
    arr[45 : 45 + nk, 230 : 230 + nj, 240 : 240 + ni] = True
    extents = (ni * SPACING[0], nj * SPACING[1], nk * SPACING[2])
    return Mask(arr, geometry, "CTV"), extents


def cord(geometry):
    k, j, i = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    x = (i - 255.75) * SPACING[0]
    y = (j - 300.6) * SPACING[1]
    z = (k - 59.5) * SPACING[2]
    return Mask((x**2 + y**2 <= 25.0) & (np.abs(z) <= 40.0), geometry, "SpinalCord")


def crop_for(mask, margin_mm):
    k, j, i = np.nonzero(mask.array)
    pad = [int(math.ceil(margin_mm / s)) + 1 for s in SPACING[::-1]]
    lo = [max(int(a.min()) - p, 0) for a, p in zip((k, j, i), pad)]
    hi = [min(int(a.max()) + 1 + p, n) for a, p, n in zip((k, j, i), pad, SHAPE)]
    return np.ascontiguousarray(mask.array[tuple(slice(a, b) for a, b in zip(lo, hi))])


def vtk_itk_margin(crop, margin_mm):
    """Slicer's Margin effect: grow by thresholding the inverse and running vtkITKImageMargin."""
    import slicer
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkImagingCore import vtkImageThreshold

    img = slicer.vtkOrientedImageData()
    img.SetDimensions(crop.shape[2], crop.shape[1], crop.shape[0])
    img.SetSpacing(*SPACING)
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(crop.view(np.uint8).ravel(), deep=True))
    th = vtkImageThreshold()
    th.SetInputData(img)
    th.ThresholdByLower(0)
    th.SetInValue(0)
    th.SetOutValue(1)
    th.SetOutputScalarTypeToUnsignedChar()
    mg = slicer.vtkITKImageMargin()
    mg.SetInputConnection(th.GetOutputPort())
    mg.CalculateMarginInMMOn()
    mg.SetOuterMarginMM(margin_mm)
    mg.Update()
    return numpy_support.vtk_to_numpy(mg.GetOutput().GetPointData().GetScalars()).reshape(crop.shape) > 0


def scipy_edt(crop, margins):
    m = np.array([margins.S, margins.A, margins.R])  # k, j, i (symmetric margins)
    d = ndimage.distance_transform_edt(~crop, sampling=np.array(SPACING[::-1]) / m)
    return d <= 1.0


def footprint_time(geometry, margins):
    """Time to compute the footprint once (it is cached afterwards)."""
    margins_module._footprint_cached.cache_clear()
    t0 = time.perf_counter()
    margins_module.footprint(geometry, margins)
    return time.perf_counter() - t0


def have_slicer():
    try:
        import slicer  # noqa: F401

        return hasattr(slicer, "vtkITKImageMargin")
    except Exception:
        return False


def main():
    voxel_cc = float(np.prod(SPACING)) / 1000
    identity = ImageGeometry(SHAPE, (0.0, 0.0, 0.0), SPACING)
    ctv, (a, b, c) = box_ctv(identity)
    sc = cord(identity)
    cases = [
        ("PTV 2/2/5 mm, 60 cc box", ctv, Margins.axial_si(2, 5), steiner_box(a, b, c, 2, 2, 5)),
        ("PTV 2 mm iso, 60 cc box", ctv, Margins.isotropic(2), steiner_box(a, b, c, 2, 2, 2)),
        ("Cord PRV 2 mm (r 5, 80 mm)", sc, Margins.isotropic(2), steiner_cylinder(5.0, 80.0, 2.0)),
    ]
    slicer_ok = have_slicer()
    rows = []  # label, method, first, time, volume, analytic, (ours full / this, ours crop / this)
    for label, mask, margins, analytic_mm3 in cases:
        analytic = analytic_mm3 / 1000
        first = footprint_time(mask.geometry, margins)
        ours = expand(mask, margins)
        t_full = best_time(lambda mask=mask, margins=margins: expand(mask, margins))
        crop = crop_for(mask, max(margins.as_tuple()))
        crop_mask = Mask(crop, ImageGeometry(crop.shape, (0.0, 0.0, 0.0), SPACING))
        t_crop = best_time(lambda m=crop_mask, margins=margins: expand(m, margins))
        assert expand(crop_mask, margins).voxel_count == ours.voxel_count
        rows.append((label, "ours, full grid", first, t_full, ours.volume_cc, analytic, None))
        rows.append((label, "ours, crop", None, t_crop, ours.volume_cc, analytic, None))
        edt = scipy_edt(crop, margins)
        t_edt = best_time(lambda crop=crop, margins=margins: scipy_edt(crop, margins))
        vol = np.count_nonzero(edt) * voxel_cc
        rows.append((label, "scipy EDT, crop", None, t_edt, vol, analytic, (t_full / t_edt, t_crop / t_edt)))
        if len(set(margins.as_tuple())) == 1 and slicer_ok:
            m = margins.R
            vol = np.count_nonzero(vtk_itk_margin(crop, m)) * voxel_cc
            t_itk = best_time(lambda crop=crop, m=m: vtk_itk_margin(crop, m))
            ratios = (t_full / t_itk, t_crop / t_itk)
            rows.append((label, "vtkITKImageMargin, crop", None, t_itk, vol, analytic, ratios))

    # oblique grid (20 degrees about S, then 10 about R): the same CTV voxels, margins in patient directions
    rot = rotation(2, 20) @ rotation(0, 10)
    oblique = ImageGeometry(SHAPE, (0.0, 0.0, 0.0), SPACING, tuple(map(tuple, rot)))
    octv = Mask(ctv.array, oblique, "CTV")
    for margins in (Margins.axial_si(2, 5), Margins(1, 2, 2, 3, 5, 3)):
        first = footprint_time(oblique, margins)
        ours = expand(octv, margins)
        t_full = best_time(lambda margins=margins: expand(octv, margins))
        rows.append((f"oblique PTV {margins.describe()}", "ours, full grid", first, t_full, ours.volume_cc, None, None))

    print(
        f"Grid {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} voxels of {SPACING[0]}x{SPACING[1]}x{SPACING[2]} mm; best of "
        f"{REPEATS} runs; 'fp ms': computing the footprint once (cached). Ratios: ours (full grid, crop) / baseline."
    )
    if not slicer_ok:
        print("slicer-core not importable: vtkITKImageMargin rows skipped.")
    head = (
        f"{'case':44s} {'method':24s} {'fp ms':>8s} {'time ms':>8s} {'full/base':>9s} {'crop/base':>9s} "
        f"{'volume cc':>9s} {'analytic':>9s} {'error':>7s}"
    )
    print(head)
    print("-" * len(head))
    for label, method, first, t, vol, analytic, ratios in rows:
        first_s = f"{first * 1e3:8.2f}" if first is not None else ""
        r_full, r_crop = (f"{r:9.2f}" for r in ratios) if ratios else ("", "")
        an_s = f"{analytic:9.3f}" if analytic else ""
        err = f"{(vol / analytic - 1) * 100:+.1f}%" if analytic else ""
        print(
            f"{label:44s} {method:24s} {first_s:>8s} {t * 1e3:8.2f} {r_full:>9s} {r_crop:>9s} "
            f"{vol:9.3f} {an_s:>9s} {err:>7s}"
        )


def rotation(axis, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    a, b = [x for x in range(3) if x != axis]
    m = np.eye(3)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


if __name__ == "__main__":
    main()
