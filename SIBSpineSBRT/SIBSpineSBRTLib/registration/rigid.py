"""Rigid MR-to-CT registration with SimpleITK: Mattes mutual information, multi-resolution, optionally
restricted to a region around the target vertebra.

Convention of the result
------------------------
``RigidResult.moving_to_fixed`` is the 4x4 matrix, in RAS millimetres, that maps a point of the moving
image's (MR's) patient frame to the same anatomical point in the fixed image's (CT's) frame:
``p_ct = M @ p_mr``. This is the *modelling* ("to parent") transform Slicer needs: put the MR volume
under a vtkMRMLLinearTransformNode whose ``MatrixTransformToParent`` is M and Slicer shows it aligned
with the CT, without resampling it (see ``mrml_transform``).

ITK works the other way: its registration transform maps *fixed* physical points to *moving* ones (the
*resampling* convention, what a resampler of the moving image onto the fixed grid needs), and in LPS
coordinates. Slicer's developer guide (Transforms, "Transform files") states the same split: ITK stores
the resampling transform, Slicer's "to parent" is the modelling transform, the inverse of it. So
``M = inverse(F @ T_itk @ F)`` with ``F = diag(-1, -1, 1, 1)`` (LPS <-> RAS); ``itk_fixed_to_moving_lps``
keeps ``T_itk`` for anyone who wants to write an ITK transform file.

Method
------
Fixed = CT, moving = MR, a 6-parameter Euler transform centred on the fixed region, Mattes mutual
information (32 bins) on a fixed random sample of the fixed region (100 %, 25 %, 5 % per level; fixed
seed, see ``RigidSettings``), regular-step gradient descent with parameter scales from physical shifts,
and a multi-resolution pyramid (shrink 4, 2, 1 with 2, 1, 0 mm smoothing). With a fixed mask (for example
the target vertebra +- one level) the fixed image is cropped to the mask's bounding box plus a margin and
the metric is sampled inside the mask only. Because neighbouring vertebrae look alike, a translation grid
search at the coarsest level feeds two candidates to the pyramid and the best at the intermediate level
is refined (without it a start 10 mm and 5 degrees off locked onto the next level in ~1 in 8 starts on the
cervical phantom, whose vertebrae are ~19 mm apart). The MR array is never modified.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry

LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])

#: progress(fraction in [0, 1], message)
ProgressCallback = Callable[[float, str], None]


class RegistrationError(RuntimeError):
    """A registration that could not run or did not produce a usable transform."""


@dataclass(frozen=True)
class RigidSettings:
    shrink_factors: Tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: Tuple[float, ...] = (2.0, 1.0, 0.0)
    histogram_bins: int = 32
    sampling_percentages: Tuple[float, ...] = (1.0, 0.25, 0.05)  # per level
    search_steps: int = 2  # translation grid of (2 n + 1)^3 points around the start (0: no search)
    search_step_mm: float = 4.0
    search_candidates: int = 2  # best grid points refined before the finest level
    sampling_seed: int = 20251
    learning_rate: float = 2.0
    min_step: float = 1e-3
    iterations: int = 150
    relaxation: float = 0.6
    crop_margin_mm: float = 12.0
    threads: Optional[int] = None  # None: SimpleITK's default


@dataclass
class RigidResult:
    moving_to_fixed: np.ndarray  # 4x4 RAS, maps MR points to CT points ("to parent" of the MR)
    itk_fixed_to_moving_lps: np.ndarray  # 4x4 LPS, ITK's resampling transform
    metric_value: float
    iterations: List[int] = field(default_factory=list)  # per resolution level
    stop_condition: str = ""
    elapsed_s: float = 0.0
    masked: bool = False


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - SimpleITK ships with Slicer and the project's venv
        raise RegistrationError(
            "Rigid registration needs SimpleITK (it ships with 3D Slicer; pip install SimpleITK)."
        ) from exc
    return sitk


def to_sitk(array: np.ndarray, geometry: ImageGeometry, dtype=np.float32):
    """A SimpleITK image (LPS physical space) holding ``array`` ([k, j, i]) on ``geometry``."""
    sitk = _sitk()
    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=dtype))
    f = LPS_FLIP[:3, :3]
    img.SetSpacing(tuple(float(s) for s in geometry.spacing))
    img.SetOrigin(tuple(float(v) for v in f @ np.asarray(geometry.origin)))
    img.SetDirection(tuple(float(v) for v in (f @ geometry.direction_matrix).ravel()))
    return img


def ras_to_itk(moving_to_fixed_ras: np.ndarray) -> np.ndarray:
    """ITK's fixed->moving LPS matrix from a moving->fixed RAS matrix."""
    return LPS_FLIP @ np.linalg.inv(np.asarray(moving_to_fixed_ras, float)) @ LPS_FLIP


def itk_to_ras(fixed_to_moving_lps: np.ndarray) -> np.ndarray:
    """The moving->fixed RAS matrix from ITK's fixed->moving LPS matrix."""
    return np.linalg.inv(LPS_FLIP @ np.asarray(fixed_to_moving_lps, float) @ LPS_FLIP)


def _euler_from_matrix(m_lps: np.ndarray, centre_lps: np.ndarray):
    sitk = _sitk()
    t = sitk.Euler3DTransform()
    t.SetCenter(tuple(float(c) for c in centre_lps))
    r = m_lps[:3, :3]
    # orthonormalise (a rigid input may carry rounding)
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    t.SetMatrix(tuple(float(v) for v in r.ravel()))
    # x -> R (x - c) + c + t'  must equal  x -> R x + b
    t.SetTranslation(tuple(float(v) for v in m_lps[:3, 3] - centre_lps + r @ centre_lps))
    return t


def _matrix_of(transform) -> np.ndarray:
    """4x4 of a (possibly composite-wrapped) SimpleITK Euler/affine transform."""
    if transform.GetName() == "CompositeTransform":
        sitk = _sitk()
        comp = sitk.CompositeTransform(transform)
        if comp.GetNumberOfTransforms() != 1:
            raise RegistrationError("Unexpected composite transform from the registration.")
        transform = comp.GetNthTransform(0)
    r = np.array(transform.GetMatrix(), float).reshape(3, 3)
    c = np.array(transform.GetCenter(), float)
    t = np.array(transform.GetTranslation(), float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = t + c - r @ c
    return m


def _crop_to_mask(array, geometry: ImageGeometry, mask, margin_mm: float):
    k, j, i = np.nonzero(mask)
    if k.size == 0:
        raise RegistrationError(
            "The registration mask is empty: draw the region around the target or register without it."
        )
    pad = np.ceil(margin_mm / np.asarray(geometry.spacing[::-1])).astype(int)
    lo = np.maximum(np.array([k.min(), j.min(), i.min()]) - pad, 0)
    hi = np.minimum(np.array([k.max(), j.max(), i.max()]) + 1 + pad, np.array(geometry.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    return array[sl], mask[sl], geometry.crop(lo, hi)


def _run(sitk, f_img, m_img, mask_img, init_lps, centre_lps, levels, settings, progress, span, state_label=""):
    """One SimpleITK registration over ``levels`` (list of (shrink, sigma, sampling)); returns
    (fixed->moving LPS matrix, final metric value, iterations per level, stop condition)."""
    transform = _euler_from_matrix(init_lps, centre_lps)
    reg = sitk.ImageRegistrationMethod()
    if settings.threads:
        reg.SetNumberOfThreads(int(settings.threads))
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel([lv[2] for lv in levels], settings.sampling_seed)
    if mask_img is not None:
        reg.SetMetricFixedMask(mask_img)
    reg.SetInterpolator(sitk.sitkLinear)
    # image gradients at the sample points only (the default filters compute whole gradient images at
    # every level, which costs more than the optimisation itself here)
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate,
        minStep=settings.min_step,
        numberOfIterations=settings.iterations,
        relaxationFactor=settings.relaxation,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([lv[0] for lv in levels])
    reg.SetSmoothingSigmasPerLevel([lv[1] for lv in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(transform, inPlace=False)
    n_levels = len(levels)
    state = {"level": -1, "iters": []}
    lo, hi = span

    def report(frac, msg):
        if progress:
            progress(lo + (hi - lo) * min(frac, 1.0), msg)

    def on_level():
        state["level"] += 1
        state["iters"].append(0)
        report(state["level"] / n_levels, f"{state_label}resolution level {state['level'] + 1} of {n_levels}")

    def on_iteration():
        state["iters"][-1] += 1
        lvl = max(state["level"], 0)
        frac = (lvl + min(state["iters"][-1] / settings.iterations, 1.0)) / n_levels
        report(
            min(frac, 0.999),
            f"{state_label}level {lvl + 1}/{n_levels}, iteration {state['iters'][-1]}, MI {reg.GetMetricValue():.4f}",
        )

    reg.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    reg.AddCommand(sitk.sitkIterationEvent, on_iteration)
    try:
        final = reg.Execute(f_img, m_img)
    except RuntimeError as exc:
        raise RegistrationError(f"SimpleITK registration failed: {exc}") from exc
    return (
        _matrix_of(final),
        float(reg.GetMetricValue()),
        list(state["iters"]),
        reg.GetOptimizerStopConditionDescription(),
    )


def _search(sitk, f_img, m_img, mask_img, init_lps, centre_lps, levels, settings, progress) -> np.ndarray:
    """Translation grid search at the coarsest level, then the best few grid points refined through all
    but the finest level; returns the start (fixed->moving LPS) with the best metric there."""
    shrink, sigma, _ = levels[0]
    f0 = sitk.Shrink(sitk.SmoothingRecursiveGaussian(f_img, sigma), [shrink] * 3) if shrink > 1 else f_img
    m0 = sitk.Shrink(sitk.SmoothingRecursiveGaussian(m_img, sigma), [shrink] * 3) if shrink > 1 else m_img
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    if mask_img is not None:
        reg.SetMetricFixedMask(sitk.Resample(mask_img, f0, sitk.Transform(), sitk.sitkNearestNeighbor))
    reg.SetInterpolator(sitk.sitkLinear)
    base = _euler_from_matrix(init_lps, centre_lps)
    t0 = np.array(base.GetTranslation())
    n, step = settings.search_steps, settings.search_step_mm
    grid = list(itertools.product(range(-n, n + 1), repeat=3))
    values = []
    for count, d in enumerate(grid):
        t = sitk.Euler3DTransform(base)
        t.SetTranslation(tuple(t0 + step * np.array(d)))
        reg.SetInitialTransform(t)
        try:
            values.append((reg.MetricEvaluate(f0, m0), d))
        except RuntimeError:  # too little overlap at this grid point
            continue
        if progress and count % 25 == 0:
            progress(0.15 * count / len(grid), f"search: translation grid {count}/{len(grid)}")
    if not values:
        raise RegistrationError("The images do not overlap near the starting position: check the initial alignment.")
    kept: List[Tuple[float, tuple]] = []
    for value, d in sorted(values):
        if all(max(abs(a - b) for a, b in zip(d, e)) > 1 for _, e in kept):
            kept.append((value, d))
        if len(kept) == settings.search_candidates:
            break
    best = None
    for c, (_, d) in enumerate(kept):
        t = sitk.Euler3DTransform(base)
        t.SetTranslation(tuple(t0 + step * np.array(d)))
        span = (0.15 + 0.6 * c / len(kept), 0.15 + 0.6 * (c + 1) / len(kept))
        out = _run(
            sitk,
            f_img,
            m_img,
            mask_img,
            _matrix_of(t),
            centre_lps,
            levels[:-1],
            settings,
            progress,
            span,
            f"candidate {c + 1}/{len(kept)}: ",
        )
        if best is None or out[1] < best[1]:
            best = out
    return best[0]


def register_rigid(
    fixed: np.ndarray,
    fixed_geometry: ImageGeometry,
    moving: np.ndarray,
    moving_geometry: ImageGeometry,
    fixed_mask: Optional[np.ndarray] = None,
    initial_moving_to_fixed: Optional[np.ndarray] = None,
    settings: Optional[RigidSettings] = None,
    progress: Optional[ProgressCallback] = None,
) -> RigidResult:
    """Register ``moving`` (MR) to ``fixed`` (CT); arrays are [k, j, i] on their geometries.

    ``fixed_mask`` (bool, on the fixed grid) restricts the metric to a region, e.g. the target vertebra
    +- one level. ``initial_moving_to_fixed`` (4x4 RAS, MR -> CT) is the starting estimate (identity:
    the scanners' frames are taken as aligned). Returns the MR -> CT matrix ("to parent" of the MR).

    The spine is nearly periodic along its axis, so a start half a vertebra off can lock onto the
    neighbouring level. Unless ``settings.search_steps`` is 0, the metric is first evaluated on a grid of
    translations around the start at the coarsest level (+-8 mm in 4 mm steps), the best few grid points
    (not neighbours of each other) are refined through all but the finest level, and the finest level
    continues from the candidate with the best metric there.
    """
    sitk = _sitk()
    settings = settings or RigidSettings()
    n = len(settings.shrink_factors)
    if len(settings.smoothing_sigmas_mm) != n or len(settings.sampling_percentages) != n:
        raise ValueError("RigidSettings: give one smoothing sigma and one sampling percentage per shrink factor.")
    clock = time.perf_counter()
    mask_img = None
    if fixed_mask is not None:
        fixed, fixed_mask, fixed_geometry = _crop_to_mask(fixed, fixed_geometry, fixed_mask, settings.crop_margin_mm)
        mask_img = to_sitk(fixed_mask.astype(np.uint8), fixed_geometry, np.uint8)
        k, j, i = np.nonzero(fixed_mask)
        centre_ras = fixed_geometry.ijk_to_ras_points(np.array([[i.mean(), j.mean(), k.mean()]]))[0]
    else:
        nk, nj, ni = fixed_geometry.shape
        centre_ras = fixed_geometry.ijk_to_ras_points(np.array([[(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2]]))[0]
    f_img = to_sitk(fixed, fixed_geometry)
    m_img = to_sitk(moving, moving_geometry)
    centre_lps = LPS_FLIP[:3, :3] @ centre_ras
    init = np.eye(4) if initial_moving_to_fixed is None else np.asarray(initial_moving_to_fixed, float)
    levels = list(zip(settings.shrink_factors, settings.smoothing_sigmas_mm, settings.sampling_percentages))

    if settings.search_steps > 0 and n > 1:
        init_lps = _search(sitk, f_img, m_img, mask_img, ras_to_itk(init), centre_lps, levels, settings, progress)
        itk_m, metric, iters, stop = _run(
            sitk, f_img, m_img, mask_img, init_lps, centre_lps, levels[-1:], settings, progress, (0.75, 1.0), "final: "
        )
    else:
        itk_m, metric, iters, stop = _run(
            sitk, f_img, m_img, mask_img, ras_to_itk(init), centre_lps, levels, settings, progress, (0.0, 1.0)
        )
    result = RigidResult(
        moving_to_fixed=itk_to_ras(itk_m),
        itk_fixed_to_moving_lps=itk_m,
        metric_value=metric,
        iterations=iters,
        stop_condition=stop,
        elapsed_s=time.perf_counter() - clock,
        masked=mask_img is not None,
    )
    if progress:
        progress(1.0, f"done in {result.elapsed_s:.1f} s")
    return result


def box_around(
    mask: np.ndarray, geometry: ImageGeometry, margin_mm: Sequence[float] = (15.0, 15.0, 30.0)
) -> np.ndarray:
    """A registration region for real cases: the voxels of ``geometry`` whose centres lie in the RAS
    bounding box of ``mask`` (e.g. the CTV or the target vertebra) grown by ``margin_mm`` (x, y, z). The
    default adds about one vertebra above and below (30 mm superior-inferior) and 15 mm around."""
    k, j, i = np.nonzero(mask)
    if k.size == 0:
        raise RegistrationError("The structure that defines the registration region is empty.")
    corners = np.array([[a, b, c] for a in (i.min(), i.max()) for b in (j.min(), j.max()) for c in (k.min(), k.max())])
    pts = geometry.ijk_to_ras_points(corners.astype(float))
    lo = pts.min(axis=0) - np.asarray(margin_mm, float)
    hi = pts.max(axis=0) + np.asarray(margin_mm, float)
    nk, nj, ni = geometry.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ras = geometry.ijk_to_ras_points(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1).astype(float))
    return np.all((ras >= lo) & (ras <= hi), axis=1).reshape(geometry.shape)


def initializer_only(
    fixed: np.ndarray,
    fixed_geometry: ImageGeometry,
    moving: np.ndarray,
    moving_geometry: ImageGeometry,
    moments: bool = True,
) -> np.ndarray:
    """SimpleITK's CenteredTransformInitializer alone (image centres or intensity moments), as a
    moving -> fixed RAS matrix: the baseline a registration must beat."""
    sitk = _sitk()
    f_img = to_sitk(fixed, fixed_geometry)
    m_img = to_sitk(moving, moving_geometry)
    mode = (
        sitk.CenteredTransformInitializerFilter.MOMENTS if moments else sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    t = sitk.CenteredTransformInitializer(f_img, m_img, sitk.Euler3DTransform(), mode)
    return itk_to_ras(_matrix_of(t))


def target_registration_error(
    estimated_moving_to_fixed: np.ndarray, true_moving_to_fixed: np.ndarray, points_fixed: Sequence[Sequence[float]]
) -> np.ndarray:
    """Distance (mm) between where the estimate and the truth put each point: for a fixed-frame (CT)
    point p, the MR point is q = truth^-1 p and the error is |estimate q - p|."""
    p = np.asarray(points_fixed, float).reshape(-1, 3)
    ph = np.c_[p, np.ones(len(p))]
    q = ph @ np.linalg.inv(np.asarray(true_moving_to_fixed, float)).T
    est = q @ np.asarray(estimated_moving_to_fixed, float).T
    return np.linalg.norm(est[:, :3] - p, axis=1)
