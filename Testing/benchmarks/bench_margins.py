"""Time the exact margins against SimpleITK's BinaryDilate, Slicer's Margin filter and a scipy EDT, in one process.

Run: .venv/bin/python Testing/benchmarks/bench_margins.py

Clinical grid: 512 x 512 x 200 voxels of 0.98 x 0.98 x 1.25 mm. Structures: a 60 cc box CTV (PTV 2/2/5 mm,
with PTV_Eval = PTV minus a spinal canal, and an isotropic 2 mm PTV) and a cord (cylinder of radius 5 mm, 80 mm
long) with a 2 mm PRV; their Minkowski volumes are analytic (Steiner's formula, checked here against a numerical
integral of the cross-sections). "ours, full grid" is the whole expand() call on the clinical grid (bounding
box, crop, dilation, output mask of 52 M voxels); "+ PTV_Eval" adds the subtraction of the canal (a second
full-grid mask). Baselines:

* SimpleITK BinaryDilate (the named baseline) on the same full grid: ball kernel, per-axis radius
  round(margin / spacing) voxels (symmetric margins only). Only the filter is timed: turning the numpy mask
  into an sitk.Image (and back) is not, which favours the baseline.
* vtkITKImageMargin, the filter of Slicer's Margin effect (isotropic only, distance between voxel centres):
  on the full grid for the cord PRV, and with scipy's EDT (per-axis sampling scaled by the margins, also
  between voxel centres) on a grid cropped to the bounding box plus the margin, where "ours, crop" runs too.

Times are the best of several runs after a warm-up; "x faster" is baseline time / our time (full grid and
crop). Goals: <= 0.2 s per structure (2 cores) and >= 4x faster than SimpleITK BinaryDilate.

Contour sources (the second table, ``geometry.contour_margins``): the same box and cord drawn as planar contours
on the CT's 1.25 mm slices (a rectangle; a 128-gon of radius 5 mm), and a clinical-like CTV (a 150-vertex
vertebral-body outline varying along z, 31 cc); a canal of radius 8 mm drawn on every slice. The time per
structure is what ``review.planning_volumes`` does: grow on the polygons (the exact structure and its version on
the CT slices) and rasterise the slice version on the 512 x 512 x 200 grid; PTV_Eval adds the subtraction of the
canal from both. The volume error of each path against the analytic volume is shown side by side: the cube rule
on the rasterised contours (the labelmap path) and the contour path.
"""

import math
import os
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..", "SIBSpineSBRT")]

from analytic_geometry import integrated_box, integrated_cylinder, steiner_box, steiner_cylinder  # noqa: E402
from margin_baselines import slicer_margin_effect  # noqa: E402

from SIBSpineSBRTLib.geometry import margins as margins_module  # noqa: E402
from SIBSpineSBRTLib.geometry.grid import ImageGeometry  # noqa: E402
from SIBSpineSBRTLib.geometry.margins import Margins, expand  # noqa: E402
from SIBSpineSBRTLib.geometry.masks import Mask  # noqa: E402

SPACING = (0.98, 0.98, 1.25)  # si, sj, sk
SHAPE = (200, 512, 512)  # nk, nj, ni
REPEATS = 7
BASELINE_REPEATS = 3  # the full-grid baselines take about a second each
GOAL_SECONDS = 0.2
GOAL_SPEEDUP = 4.0
CORD_AXIS = (255.75, 222.3)  # (i, j): posterior of the CTV box, at a generic place in the voxel lattice
CANAL_RADIUS_MM = 8.0


def best_time(fn, repeats=REPEATS):
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def check_analytic_volumes():
    """Steiner's formulas against integrals of the cross-sections of the grown bodies."""
    for exact, numeric in (
        (steiner_cylinder(5.0, 80.0, 2.0), integrated_cylinder(5.0, 80.0, 2.0)),
        (steiner_box(40.18, 40.18, 37.5, 2.0, 2.0, 5.0), integrated_box(40.18, 40.18, 37.5, 2.0, 2.0, 5.0)),
    ):
        assert abs(numeric / exact - 1) < 1e-9, (numeric, exact)


def box_ctv(geometry):
    arr = np.zeros(SHAPE, bool)
    ni, nj, nk = 41, 41, 30  # 40.2 x 40.2 x 37.5 mm
    arr[85 : 85 + nk, 230 : 230 + nj, 240 : 240 + ni] = True
    extents = (ni * SPACING[0], nj * SPACING[1], nk * SPACING[2])
    return Mask(arr, geometry, "CTV"), extents


def cord(geometry):
    k, j, i = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    x = (i - CORD_AXIS[0]) * SPACING[0]
    y = (j - CORD_AXIS[1]) * SPACING[1]
    z = (k - 99.5) * SPACING[2]
    return Mask((x**2 + y**2 <= 25.0) & (np.abs(z) <= 40.0), geometry, "SpinalCord")


def canal(geometry):
    """Spinal canal: a cylinder of radius 8 mm around the cord through every slice; it cuts into the PTV."""
    k, j, i = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    x = (i - CORD_AXIS[0]) * SPACING[0]
    y = (j - CORD_AXIS[1]) * SPACING[1]
    # a C-ordered array, as arrayFromVolume gives: Mask keeps the memory layout of what it is given, and a
    # broadcast (or transposed) array makes every later set operation on it several times slower
    inside = np.ascontiguousarray(np.broadcast_to(x**2 + y**2 <= CANAL_RADIUS_MM**2, SHAPE))
    return Mask(inside, geometry, "SpinalCanal")


def crop_for(mask, margin_mm):
    k, j, i = np.nonzero(mask.array)
    pad = [int(math.ceil(margin_mm / s)) + 1 for s in SPACING[::-1]]
    lo = [max(int(a.min()) - p, 0) for a, p in zip((k, j, i), pad)]
    hi = [min(int(a.max()) + 1 + p, n) for a, p, n in zip((k, j, i), pad, SHAPE)]
    return np.ascontiguousarray(mask.array[tuple(slice(a, b) for a, b in zip(lo, hi))])


def scipy_edt(crop, margins):
    m = np.array([margins.S, margins.A, margins.R])  # k, j, i (symmetric margins)
    d = ndimage.distance_transform_edt(~crop, sampling=np.array(SPACING[::-1]) / m)
    return d <= 1.0


def sitk_image(arr):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr.view(np.uint8))  # numpy [k, j, i] -> sitk (x=i, y=j, z=k)
    img.SetSpacing(SPACING)
    return img


def sitk_radius(margins):
    """Per-axis kernel radius in voxels (i, j, k), as a user of BinaryDilate would choose it."""
    return [int(round(r / s)) for r, s in zip((margins.R, margins.A, margins.S), SPACING)]


def sitk_dilate(img, radius):
    import SimpleITK as sitk

    return sitk.BinaryDilate(img, radius, sitk.sitkBall, 0.0, 1.0)


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


def have_sitk():
    try:
        import SimpleITK  # noqa: F401

        return True
    except Exception:
        return False


def main():
    check_analytic_volumes()
    voxel_cc = float(np.prod(SPACING)) / 1000
    identity = ImageGeometry(SHAPE, (0.0, 0.0, 0.0), SPACING)
    ctv, (a, b, c) = box_ctv(identity)
    sc = cord(identity)
    spinal_canal = canal(identity)
    cases = [  # label, mask, margins, analytic mm3, subtracted mask (PTV_Eval)
        ("PTV 2/2/5 mm, 60 cc box", ctv, Margins.axial_si(2, 5), steiner_box(a, b, c, 2, 2, 5), spinal_canal),
        ("PTV 2 mm iso, 60 cc box", ctv, Margins.isotropic(2), steiner_box(a, b, c, 2, 2, 2), None),
        ("Cord PRV 2 mm (r 5, 80 mm)", sc, Margins.isotropic(2), steiner_cylinder(5.0, 80.0, 2.0), None),
    ]
    slicer_ok, sitk_ok = have_slicer(), have_sitk()
    rows = []  # label, method, footprint s, time s, volume cc, analytic cc, (x faster than full, than crop)
    summary = []  # label, our time for the structure, SimpleITK time
    for label, mask, margins, analytic_mm3, cut in cases:
        analytic = analytic_mm3 / 1000
        first = footprint_time(mask.geometry, margins)
        ours = expand(mask, margins)
        t_full = best_time(lambda mask=mask, margins=margins: expand(mask, margins))
        rows.append((label, "ours, full grid", first, t_full, ours.volume_cc, analytic, None))
        t_structure = t_full
        if cut is not None:
            ptv_eval = ours.subtract(cut, "PTV_Eval")
            t_eval = best_time(lambda mask=mask, margins=margins, cut=cut: expand(mask, margins).subtract(cut))
            rows.append((label, "ours, full + PTV_Eval", None, t_eval, ptv_eval.volume_cc, None, None))
            t_structure = t_eval
        crop = crop_for(mask, max(margins.as_tuple()))
        crop_mask = Mask(crop, ImageGeometry(crop.shape, (0.0, 0.0, 0.0), SPACING))
        t_crop = best_time(lambda m=crop_mask, margins=margins: expand(m, margins))
        assert expand(crop_mask, margins).voxel_count == ours.voxel_count
        rows.append((label, "ours, crop", None, t_crop, ours.volume_cc, analytic, None))

        t_sitk = None
        if sitk_ok and margins.is_symmetric:
            import SimpleITK as sitk

            img, radius = sitk_image(mask.array), sitk_radius(margins)
            dilated = sitk_dilate(img, radius)  # keep the image alive while numpy reads its buffer
            vol = np.count_nonzero(sitk.GetArrayViewFromImage(dilated)) * voxel_cc
            t_sitk = best_time(lambda img=img, radius=radius: sitk_dilate(img, radius), BASELINE_REPEATS)
            method = f"SimpleITK ball {radius[0]},{radius[1]},{radius[2]} full"
            rows.append((label, method, None, t_sitk, vol, analytic, (t_sitk / t_structure, None)))
        summary.append((label, t_structure, t_sitk))

        edt = scipy_edt(crop, margins)
        t_edt = best_time(lambda crop=crop, margins=margins: scipy_edt(crop, margins))
        vol = np.count_nonzero(edt) * voxel_cc
        rows.append((label, "scipy EDT, crop", None, t_edt, vol, analytic, (t_edt / t_full, t_edt / t_crop)))
        if len(set(margins.as_tuple())) == 1 and slicer_ok:
            m = margins.R
            vol = np.count_nonzero(slicer_margin_effect(crop, SPACING, m)) * voxel_cc
            t_itk = best_time(lambda crop=crop, m=m: slicer_margin_effect(crop, SPACING, m))
            ratios = (t_itk / t_full, t_itk / t_crop)
            rows.append((label, "vtkITKImageMargin, crop", None, t_itk, vol, analytic, ratios))
            if mask is sc:  # the PRV: Slicer's filter on the whole grid too
                arr = mask.array
                vol = np.count_nonzero(slicer_margin_effect(arr, SPACING, m)) * voxel_cc
                t_itk = best_time(lambda arr=arr, m=m: slicer_margin_effect(arr, SPACING, m), BASELINE_REPEATS)
                rows.append((label, "vtkITKImageMargin, full", None, t_itk, vol, analytic, (t_itk / t_full, None)))

    # oblique grid (20 degrees about S, then 10 about R): the same CTV voxels, margins in patient directions
    rot = rotation(2, 20) @ rotation(0, 10)
    oblique = ImageGeometry(SHAPE, (0.0, 0.0, 0.0), SPACING, tuple(map(tuple, rot)))
    octv = Mask(ctv.array, oblique, "CTV")
    for margins in (Margins.axial_si(2, 5), Margins(1, 2, 2, 3, 5, 3)):
        first = footprint_time(oblique, margins)
        ours = expand(octv, margins)
        t_full = best_time(lambda margins=margins: expand(octv, margins))
        rows.append((f"oblique PTV {margins.describe()}", "ours, full grid", first, t_full, ours.volume_cc, None, None))

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"Grid {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} voxels of {SPACING[0]}x{SPACING[1]}x{SPACING[2]} mm; {os.cpu_count()} "
        f"cores{'' if load is None else f', load average {load[0]:.2f}'}; best of {REPEATS} runs ({BASELINE_REPEATS} "
        "for full-grid baselines); 'fp ms': computing the footprint once (cached). 'x faster': baseline time / our "
        "time, on the full grid (with PTV_Eval where built) and on the crop."
    )
    if not sitk_ok:
        print("SimpleITK not importable: BinaryDilate rows skipped.")
    else:
        import SimpleITK as sitk

        print(
            f"SimpleITK {sitk.Version.VersionString()}, {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()} threads"
        )
    if not slicer_ok:
        print("slicer-core not importable: vtkITKImageMargin rows skipped.")
    head = (
        f"{'case':44s} {'method':30s} {'fp ms':>8s} {'time ms':>8s} {'x faster':>8s} {'(crop)':>7s} "
        f"{'volume cc':>9s} {'analytic':>9s} {'error':>7s}"
    )
    print(head)
    print("-" * len(head))
    for label, method, first, t, vol, analytic, ratios in rows:
        first_s = f"{first * 1e3:8.2f}" if first is not None else ""
        r_full, r_crop = (f"{r:.1f}" if r is not None else "" for r in ratios) if ratios else ("", "")
        an_s = f"{analytic:9.3f}" if analytic else ""
        err = f"{(vol / analytic - 1) * 100:+.1f}%" if analytic else ""
        print(
            f"{label:44s} {method:30s} {first_s:>8s} {t * 1e3:8.2f} {r_full:>8s} {r_crop:>7s} "
            f"{vol:9.3f} {an_s:>9s} {err:>7s}"
        )
    print()
    print(f"Goals: <= {GOAL_SECONDS:g} s per structure, >= {GOAL_SPEEDUP:g}x faster than SimpleITK BinaryDilate")
    for label, t_ours, t_sitk in summary:
        speed = f"{t_sitk / t_ours:.1f}x" if t_sitk else "n/a"
        met = t_ours <= GOAL_SECONDS and (t_sitk is None or t_sitk / t_ours >= GOAL_SPEEDUP)
        print(f"  {label:44s} ours {t_ours * 1e3:7.1f} ms, SimpleITK {speed:>7s}: {'met' if met else 'NOT MET'}")
    contour_benchmark(identity)


def contour_benchmark(identity):
    """The contour path (second table): time per structure and volume error against analytic, beside the cube
    rule on the same contours rasterised on the grid."""
    from SIBSpineSBRTLib.dose.contours import ContourStructure
    from SIBSpineSBRTLib.geometry import contour_margins as cm

    s = SPACING[2]
    ct = np.arange(SHAPE[0]) * s  # the CT slices' positions along S
    cx, cy = 240 * SPACING[0] + 20.09 - 0.49, 230 * SPACING[1] + 20.09 - 0.49  # the box CTV's centre (as above)
    ax, ay = CORD_AXIS[0] * SPACING[0], CORD_AXIS[1] * SPACING[1]

    def ring(points, z):
        return np.column_stack([points, np.full(len(points), z)])

    def circle(r, x0, y0, n):
        t = 0.1 + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.column_stack([x0 + r * np.cos(t), y0 + r * np.sin(t)])

    half = 41 * SPACING[0] / 2
    rect = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]])
    box_planes = ct[85:115]
    box = ContourStructure.from_polygons("CTV", [ring(rect, z) for z in box_planes])
    cord_planes = ct[(np.abs(ct - 99.5 * s) <= 40.0 - s / 2 + 1e-9)]
    cord_c = ContourStructure.from_polygons("SpinalCord", [ring(circle(5.0, ax, ay, 128), z) for z in cord_planes])
    canal_c = ContourStructure.from_polygons("SpinalCanal", [ring(circle(CANAL_RADIUS_MM, ax, ay, 128), z) for z in ct])
    t = np.linspace(0, 2 * np.pi, 150, endpoint=False)

    def body(z):
        r = 17 + 3 * np.cos(2 * t) - 2 * np.sin(3 * t) + 0.5 * np.sin(z / 4)
        return np.column_stack([cx + r * np.cos(t), cy - 10 + 0.8 * r * np.sin(t)])

    clinical = ContourStructure.from_polygons("CTV", [ring(body(z), z) for z in ct[85:115]])
    length = len(cord_planes) * s
    a = 41 * SPACING[0]
    asym = Margins(2, 3, 2, 2.5, 5, 4)
    octant = (
        a * a * 37.5
        + a * 37.5 * (asym.R + asym.L + asym.A + asym.P)
        + a * a * (asym.S + asym.I)
        + math.pi / 4 * (a * 9 * (5 + 4.5) + 37.5 * 5 * 4.5)  # R+L = 5, A+P = 4.5, S+I = 9
        + math.pi / 6 * 5 * 4.5 * 9
    )
    cases = [  # label, source, margins, analytic mm3 (None: no closed form), canal to subtract
        ("PTV 2/2/5 mm, 60 cc box", box, Margins.axial_si(2, 5), steiner_box(a, a, 37.5, 2, 2, 5), canal_c),
        ("PTV 2 mm iso, 60 cc box", box, Margins.isotropic(2), steiner_box(a, a, 37.5, 2, 2, 2), None),
        ("Cord PRV 2 mm (r 5, 80 mm)", cord_c, Margins.isotropic(2), steiner_cylinder(5.0, length, 2.0), None),
        ("PTV 2/2/5 mm, clinical-like CTV", clinical, Margins.axial_si(2, 5), None, canal_c),
        ("PTV R2 L3 A2 P2.5 S5 I4, box", box, asym, octant, None),
    ]
    rows = []
    for label, source, margins, analytic_mm3, cut in cases:

        def build(source=source, margins=margins, cut=cut):
            exact, on_slices = cm.grow_contours(source, margins, ct, (ct[0] - s / 2, ct[-1] + s / 2))
            if cut is not None:
                exact = cm.subtract_contours(exact, [cut])
                on_slices = cm.subtract_contours(on_slices, [cut])
            return exact, cm.rasterize(on_slices, identity)

        repeats = 3 if margins.is_symmetric else 1
        t_contour = best_time(build, repeats)
        exact, _ = build()
        grown = exact if cut is None else cm.grow_contours(source, margins, ct)[0]
        cubes = expand(cm.rasterize(source, identity), margins)  # the labelmap path on the same contours
        analytic = None if analytic_mm3 is None else analytic_mm3 / 1000
        rows.append(
            (label + (" + PTV_Eval" if cut is not None else ""), t_contour, grown.volume_cc, cubes.volume_cc, analytic)
        )
    print()
    print(
        "Contour sources: planes on the 1.25 mm CT slices; 'time ms' = grow on the polygons (+ PTV_Eval) and rasterise "
        "on the full grid; volumes of the grown structure (before PTV_Eval) against analytic, the cube rule on the "
        "rasterised contours beside it."
    )
    head = f"{'case':44s} {'time ms':>8s} {'contour cc':>10s} {'error':>7s} {'cube rule cc':>12s} {'error':>7s}"
    head += f" {'analytic':>9s}"
    print(head)
    print("-" * len(head))
    for label, t, vol, cube, analytic in rows:
        e1 = f"{(vol / analytic - 1) * 100:+.2f}%" if analytic else ""
        e2 = f"{(cube / analytic - 1) * 100:+.2f}%" if analytic else ""
        an = f"{analytic:9.3f}" if analytic else ""
        goal = "" if t <= GOAL_SECONDS else "  (over the goal)"
        print(f"{label:44s} {t * 1e3:8.1f} {vol:10.3f} {e1:>7s} {cube:12.3f} {e2:>7s} {an:>9s}{goal}")


def rotation(axis, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    a, b = [x for x in range(3) if x != axis]
    m = np.eye(3)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


if __name__ == "__main__":
    main()
