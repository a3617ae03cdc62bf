"""A plausible SIB dose for a phantom, built from distance fields and normalised like a real plan.

The dose at a point is a smooth minimum of

* the plan: a prescription plateau on PTV_Eval with a steep edge and a low-dose tail outside
  (``rx * (w_edge * sigmoid(-(d_ptv - edge) / width) + (1 - w_edge) * exp(-max(d_ptv, 0) / tail))``),
  plus the boost on the GTV (``boost * sigmoid(-(d_gtv - boost_margin + 0.5) / 1.2)``);
* one cap per organ at risk, rising linearly with the signed distance from the organ's surface
  (``cap + gradient * d_oar``; negative inside the organ): the steep dose fall-off a VMAT plan achieves
  towards the cord, the thecal sac and nearby hollow organs.

Distances are signed Euclidean distances (mm) computed on the CT grid around the target and
interpolated at the dose grid's points; far from the target the distance to PTV_Eval's bounding box
stands in for the distance to PTV_Eval. The dose is then scaled so that PTV_Eval D90% = 30 Gy with the
project's DVH engine, as a planner normalises a plan. Variants differ only in their parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry

PRESCRIPTION_GY = 30.0


@dataclass(frozen=True)
class DoseParams:
    rx: float = 35.0  # plateau height before normalisation (Gy)
    edge: float = 2.0  # the plateau's edge lies this far outside the plan's target (mm)
    width: float = 1.5  # edge width (mm)
    w_edge: float = 0.45  # share of the steep edge; the rest is the tail
    tail: float = 18.0  # tail decay length (mm)
    target: str = "PTV_Eval"  # the structure the plan covers (a teaching error may use "PTV")
    boost: float = 10.5  # SIB on the GTV (Gy, before normalisation)
    boost_margin: float = 0.0  # the boosted region extends this far beyond the GTV (mm)
    softness: float = 1.2  # smooth-minimum softness (Gy)
    caps: Mapping[str, Tuple[float, float]] = field(default_factory=dict)  # structure -> (cap at surface Gy, Gy/mm)


def signed_distance(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Signed Euclidean distance (mm) to a mask's boundary: > 0 outside, < 0 inside (voxel centres,
    shifted by half a voxel so that the boundary sits between the voxels)."""
    from scipy import ndimage

    s = np.asarray(spacing_kji, float)
    if not mask.any():
        return np.full(mask.shape, 1e3, np.float32)
    half = 0.5 * float(np.min(s))
    out = ndimage.distance_transform_edt(~mask, sampling=s)
    inside = ndimage.distance_transform_edt(mask, sampling=s)
    return np.where(mask, -(inside - half), out - half).astype(np.float32)


def dose_grid_geometry(body: np.ndarray, ct: ImageGeometry, spacing: float) -> ImageGeometry:
    """A RAS-aligned dose grid covering the body outline, offset from the CT lattice by a fraction of a voxel."""
    j = np.flatnonzero(body.any(axis=(0, 2)))
    i = np.flatnonzero(body.any(axis=(0, 1)))
    lo_ij = ct.ijk_to_ras_points(np.array([[i.min(), j.min(), 0], [i.max(), j.max(), 0]], float))
    zlo = ct.ijk_to_ras_points(np.array([[0, 0, 0]], float))[0, 2]
    zhi = ct.ijk_to_ras_points(np.array([[0, 0, ct.shape[0] - 1]], float))[0, 2]
    lo = np.array([lo_ij[:, 0].min(), lo_ij[:, 1].min(), zlo]) - 2.0
    hi = np.array([lo_ij[:, 0].max(), lo_ij[:, 1].max(), zhi]) + 2.0
    n = np.ceil((hi - lo) / spacing).astype(int) + 1
    origin = lo + 0.37 * spacing  # not on the CT lattice
    return ImageGeometry((int(n[2]), int(n[1]), int(n[0])), tuple(origin), (spacing, spacing, spacing))


@dataclass
class DistanceFields:
    """Signed distances, each on its own CT sub-box (the region where it matters), and how to sample them."""

    fields: Dict[str, np.ndarray]
    boxes: Dict[str, ImageGeometry]
    bbox: Dict[str, Tuple[np.ndarray, np.ndarray]]  # RAS bounding box of each structure

    @classmethod
    def build(cls, masks: Mapping[str, Tuple[np.ndarray, np.ndarray, float]], ct: ImageGeometry) -> DistanceFields:
        """``masks``: name -> (mask, region mask, margin mm); each field is computed on the region's
        bounding box grown by the margin (the structure outside that box counts as far away)."""
        fields, boxes, bbox = {}, {}, {}
        spacing = ct.spacing[::-1]
        for name, (mask, region, margin) in masks.items():
            k, j, i = np.nonzero(region)
            lo = np.array([k.min(), j.min(), i.min()])
            hi = np.array([k.max(), j.max(), i.max()]) + 1
            pad = np.ceil(margin / np.asarray(spacing)).astype(int)
            lo = np.maximum(lo - pad, 0)
            hi = np.minimum(hi + pad, np.array(ct.shape))
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            fields[name] = signed_distance(mask[sl], spacing)
            boxes[name] = ct.crop(lo, hi)
            if mask.any():
                mk, mj, mi = np.nonzero(mask)
                c = ct.ijk_to_ras_points(
                    np.array(
                        [
                            [a, b_, c_]
                            for a in (mi.min(), mi.max())
                            for b_ in (mj.min(), mj.max())
                            for c_ in (mk.min(), mk.max())
                        ],
                        float,
                    )
                )
                bbox[name] = (c.min(axis=0), c.max(axis=0))
        return cls(fields, boxes, bbox)

    def sample(self, name: str, ras: np.ndarray, far: float = 1e3) -> np.ndarray:
        """Field values at RAS points (trilinear). Outside the field's box: the distance to the
        structure's bounding box (a lower bound that is close far away), or ``far`` without one."""
        from scipy import ndimage

        g = self.boxes[name]
        ijk = g.ras_to_ijk_points(ras)
        nk, nj, ni = g.shape
        inside = np.all((ijk >= 0) & (ijk <= np.array([ni - 1, nj - 1, nk - 1])), axis=1)
        out = np.empty(len(ras), np.float32)
        out[inside] = ndimage.map_coordinates(self.fields[name], ijk[inside][:, ::-1].T, order=1, mode="nearest")
        if name in self.bbox:
            lo, hi = self.bbox[name]
            gap = np.maximum(np.maximum(lo - ras[~inside], ras[~inside] - hi), 0.0)
            out[~inside] = np.maximum(np.linalg.norm(gap, axis=1), 1.0)
        else:
            out[~inside] = far
        return out


def raw_dose(fields: DistanceFields, points: np.ndarray, params: DoseParams) -> np.ndarray:
    """Unnormalised dose (Gy) at RAS points (see the module docstring)."""
    d_ptv = fields.sample(params.target, points)
    d_gtv = fields.sample("GTV", points)
    sig = lambda t: 1.0 / (1.0 + np.exp(-np.clip(t, -60.0, 60.0)))  # noqa: E731
    plan = params.rx * (
        params.w_edge * sig(-(d_ptv - params.edge) / params.width)
        + (1 - params.w_edge) * np.exp(-np.maximum(d_ptv, 0.0) / params.tail)
    )
    plan = plan + params.boost * sig(-(d_gtv - params.boost_margin + 0.5) / 1.2)
    terms = [-plan / params.softness]
    for name, (cap, grad) in params.caps.items():
        if name in fields.fields:
            terms.append(-(cap + grad * fields.sample(name, points)) / params.softness)
    if len(terms) == 1:
        return np.maximum(plan, 0.0)
    stack = np.stack(terms)
    m = stack.max(axis=0)
    soft_min = -params.softness * (m + np.log(np.exp(stack - m).sum(axis=0)))
    return np.maximum(soft_min, 0.0)


def normalise(
    dose: np.ndarray, dose_geometry: ImageGeometry, ptv_eval: np.ndarray, ct: ImageGeometry
) -> Tuple[np.ndarray, float]:
    """Scale so that PTV_Eval D90% = 30 Gy (the project's DVH engine). Returns (dose, factor)."""
    from ..dose.dvh import compute_dvh
    from ..dose.grid import DoseGrid
    from ..geometry.masks import Mask

    d90 = compute_dvh(Mask(ptv_eval, ct, "PTV_Eval"), DoseGrid(dose, dose_geometry)).metric("D90%")
    factor = PRESCRIPTION_GY / d90
    return dose * factor, factor


def build_dose(
    masks: Mapping[str, np.ndarray],
    ct: ImageGeometry,
    params: DoseParams,
    spacing: float = 2.5,
    fields: Optional[DistanceFields] = None,
):
    """The normalised dose (float32 Gy) on its own grid: (dose, geometry, factor, fields).

    ``masks`` holds the segments on the CT grid plus ``PTV``, ``PTV_Eval`` and ``Body`` (and
    ``SpinalCord_PRV02`` when the cord exists). ``fields`` from an earlier call are reused and extended."""
    from .cases import grid_points

    ptv = masks["PTV"]
    wanted = {
        params.target: (masks[params.target], masks[params.target], 40.0),
        "GTV": (masks["GTV"], masks["GTV"], 15.0 + params.boost_margin),
    }
    wanted.update({n: (masks[n], ptv, 20.0) for n in params.caps if n in masks})
    if fields is None:
        fields = DistanceFields({}, {}, {})
    todo = {n: v for n, v in wanted.items() if n not in fields.fields}
    if todo:
        more = DistanceFields.build(todo, ct)
        fields.fields.update(more.fields)
        fields.boxes.update(more.boxes)
        fields.bbox.update(more.bbox)
    g = dose_grid_geometry(masks["Body"], ct, spacing)
    x, y, z = grid_points(g)
    raw = raw_dose(fields, np.stack([x, y, z], axis=1).astype(np.float64), params).reshape(g.shape)
    dose, factor = normalise(raw, g, masks["PTV_Eval"], ct)
    return dose.astype(np.float32), g, factor, fields


def with_caps(params: DoseParams, **changes) -> DoseParams:
    """A copy of ``params`` with some fields (or caps, as ``caps={...}`` merged in) changed."""
    caps = dict(params.caps)
    caps.update(changes.pop("caps", {}))
    return replace(params, caps=caps, **changes)
