"""Dose on a grid, with its unit, and trilinear interpolation at arbitrary patient points.

The dose between voxel centres is the trilinear interpolation of the eight surrounding values. Between
the outermost voxel centres and the edge of the grid (the outer half voxel) the edge value is used, so
the field is constant across that half voxel. A point belongs to the grid when it lies inside one of its
voxel cubes.

How far the trilinear field is from linear is known from the grid values alone (``bends``): along a
grid axis it is piecewise linear, bending only on the planes of voxel centres, by the second difference
of the values there; inside a cell it adds the cross terms of its faces (xy, xz, yz). A region where all
of these vanish has a linear dose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..geometry.grid import ImageGeometry

#: Units we accept for a physical dose, as DICOM RTDOSE spells them, mapped to Gy per unit.
DOSE_UNITS_TO_GY = {"GY": 1.0, "CGY": 0.01}


class DoseError(ValueError):
    """A dose volume that cannot be evaluated as it is (no units, NaN, negative values...)."""


@dataclass(frozen=True, eq=False)
class DoseGrid:
    """Physical dose in Gy on a ``[k, j, i]`` grid (converted from cGy on construction if needed)."""

    array: np.ndarray
    geometry: ImageGeometry
    name: str = "Dose"

    def __post_init__(self) -> None:
        arr = np.asarray(self.array, dtype=np.float64)
        if arr.shape != self.geometry.shape:
            raise DoseError(f"Dose {self.name}: array shape {arr.shape} does not match its grid {self.geometry.shape}.")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DoseError(
                f"Dose {self.name} has {int(bad.sum())} voxels that are NaN or infinite; "
                "fix or re-export the dose before evaluating."
            )
        if arr.min() < 0:
            raise DoseError(f"Dose {self.name} has negative values (min {arr.min():.3g} Gy); a physical dose cannot.")
        if arr.size and arr.max() <= 0:
            raise DoseError(
                f"Dose {self.name} is zero everywhere: it is not a plan dose (an empty or unscaled export?). Export "
                "the plan's calculated dose again."
            )
        arr = arr.copy()
        arr.setflags(write=False)
        object.__setattr__(self, "array", arr)
        # Interpolation table: at least two values along every axis (a single slice is repeated, which
        # makes the field constant along that axis), flattened for fast gathers.
        pad = [(0, 1 if n == 1 else 0) for n in arr.shape]
        table = np.pad(arr, pad, mode="edge") if any(p[1] for p in pad) else arr
        object.__setattr__(self, "_table_shape", table.shape)
        object.__setattr__(self, "_table", np.ascontiguousarray(table).ravel())

    @classmethod
    def from_array(cls, array, geometry: ImageGeometry, unit: str, name: str = "Dose") -> DoseGrid:
        """Build from values in ``unit`` ("Gy" or "cGy"); a missing or unknown unit is an error, never a guess."""
        if unit is None or str(unit).strip() == "":
            raise DoseError(
                f"Dose {name} has no unit. Set it (Gy or cGy): for a DICOM RTDOSE, DoseUnits; for a volume "
                "file, pass --dose-unit Gy."
            )
        key = str(unit).strip().upper()
        if key not in DOSE_UNITS_TO_GY:
            raise DoseError(f"Dose {name} has unit '{unit}', which is not a physical dose unit (Gy or cGy).")
        return cls(np.asarray(array, dtype=np.float64) * DOSE_UNITS_TO_GY[key], geometry, name)

    @property
    def max_gy(self) -> float:
        return float(self.array.max())

    def scaled(self, factor: float, name: str = "") -> DoseGrid:
        """A new dose grid multiplied by ``factor`` (the original is untouched)."""
        if not np.isfinite(factor) or factor < 0:
            raise DoseError(f"Dose scale factor must be a finite number >= 0; got {factor}.")
        return DoseGrid(self.array * factor, self.geometry, name or f"{self.name} x{factor:.4g}")

    def sample(self, ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Trilinear dose (Gy) at (N, 3) RAS points, and a boolean array telling which points lie inside
        the grid's voxel cubes. Between the outermost voxel centres and the grid edge the edge value is used."""
        ijk = self.geometry.ras_to_ijk_points(np.asarray(ras, dtype=float).reshape(-1, 3))
        dose, _, inside = self.interpolate_index(ijk, gradient=False)
        return dose, inside

    def sample_with_gradient(self, ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like ``sample``, plus the gradient (Gy/mm, (N, 3) RAS) of the trilinear field at each point.

        Along an axis where the point lies in the grid's outer half voxel the field is constant, so that
        component is zero. On a plane between two dose cells the gradient of the cell above is returned.
        """
        ijk = self.geometry.ras_to_ijk_points(np.asarray(ras, dtype=float).reshape(-1, 3))
        dose, grad_ijk, inside = self.interpolate_index(ijk, gradient=True)
        # d/dras = directions @ (d/dijk / spacing)
        grad = np.einsum("nc,rc->nr", grad_ijk / np.asarray(self.geometry.spacing), self.geometry.direction_matrix)
        return dose, grad, inside

    def interpolate_index(self, ijk: np.ndarray, gradient: bool = False):
        """Trilinear dose at (N, 3) fractional (i, j, k) indices of this grid.

        Returns ``(dose, grad_ijk, inside)``: dose in Gy (float64); the gradient in Gy per index step
        along i, j, k ((N, 3) float64, or None when ``gradient`` is False); and whether each point lies
        inside the grid's voxel cubes.
        """
        ijk = np.asarray(ijk, dtype=np.float64)
        nk, nj, ni = self.geometry.shape
        tk, tj, ti = self._table_shape
        # per axis (columns: reductions over the rows of an (N, 3) array are slow)
        inside, flat, frac, outer = True, 0, [], []
        for axis, (n, cells, stride) in enumerate(((ni, ti - 1, 1), (nj, tj - 1, ti), (nk, tk - 1, ti * tj))):
            x = ijk[:, axis]
            inside = inside & (x >= -0.5) & (x <= n - 0.5)
            clipped = np.clip(x, 0.0, n - 1.0)
            base = np.minimum(clipped.astype(np.int64), cells - 1)  # floor (clipped >= 0)
            frac.append(clipped - base)
            flat = flat + base * stride
            if gradient:
                outer.append((x < 0.0) | (x > n - 1.0))
        fi, fj, fk = frac
        t = self._table
        sj, sk = ti, ti * tj
        c000, c001 = t[flat], t[flat + 1]
        c010, c011 = t[flat + sj], t[flat + sj + 1]
        c100, c101 = t[flat + sk], t[flat + sk + 1]
        c110, c111 = t[flat + sk + sj], t[flat + sk + sj + 1]
        # along i (index c<k><j><i>)
        x00, x01, x10, x11 = c001 - c000, c011 - c010, c101 - c100, c111 - c110
        e00, e01, e10, e11 = c000 + fi * x00, c010 + fi * x01, c100 + fi * x10, c110 + fi * x11
        # along j
        y0, y1 = e01 - e00, e11 - e10
        g0, g1 = e00 + fj * y0, e10 + fj * y1
        dk = g1 - g0
        dose = g0 + fk * dk
        if not gradient:
            return dose, None, inside
        xi0 = x00 + fj * (x01 - x00)
        xi1 = x10 + fj * (x11 - x10)
        grad = np.empty((len(dose), 3))
        # constant extrapolation in the outer half voxel (and along single-slice axes)
        grad[:, 0] = np.where(outer[0], 0.0, xi0 + fk * (xi1 - xi0))
        grad[:, 1] = np.where(outer[1], 0.0, y0 + fk * (y1 - y0))
        grad[:, 2] = np.where(outer[2], 0.0, dk)
        return dose, grad, inside

    def bends(self, lo_ijk, hi_ijk) -> Bends:
        """How the trilinear field departs from linear over the region between fractional indices ``lo_ijk``
        and ``hi_ijk`` ((i, j, k)); see ``Bends``."""
        shape = np.array(self._table_shape[::-1])  # nodes per axis (i, j, k)
        lo = np.asarray(lo_ijk, dtype=np.float64)
        hi = np.asarray(hi_ijk, dtype=np.float64)
        c_lo = np.clip(np.floor(lo).astype(np.int64), 0, shape - 2)  # the region's cells
        c_hi = np.clip(np.floor(hi).astype(np.int64), 0, shape - 2)
        # their nodes and one more on each side, the outermost repeated (so that the second difference on the
        # outermost plane is the slope towards the constant outer half voxel); f[q] = node c_lo - 1 + q
        first, last = c_lo - 1, c_hi + 2
        table = self._table.reshape(self._table_shape)
        block = table[tuple(slice(max(first[a], 0), min(last[a], shape[a] - 1) + 1) for a in (2, 1, 0))]
        pads = [(int(first[a] < 0), int(last[a] > shape[a] - 1)) for a in (2, 1, 0)]
        f = np.pad(block, pads, mode="edge") if any(p[0] or p[1] for p in pads) else block
        nodes = f[1:-1, 1:-1, 1:-1]  # the cells' nodes
        # cross terms (xy, xz, yz) on the faces of each cell: the largest bounds the cell's
        cross = np.zeros(tuple(n - 1 for n in nodes.shape))
        for a, b in ((0, 1), (0, 2), (1, 2)):
            c = np.abs(np.diff(np.diff(nodes, axis=a), axis=b))
            other = 3 - a - b
            one, two = [slice(None)] * 3, [slice(None)] * 3
            one[other], two[other] = slice(0, -1), slice(1, None)
            np.maximum(cross, np.maximum(c[tuple(one)], c[tuple(two)]), out=cross)
        # bends on the planes of voxel centres strictly inside the region; the outermost planes bend (towards
        # the constant outer half voxel) only for a region reaching beyond them
        nk, nj, ni = self.geometry.shape
        upper = np.array([ni - 1, nj - 1, nk - 1], dtype=np.float64)
        kink = 0.0
        for axis in range(3):  # i, j, k
            dim = 2 - axis
            p0 = max(int(np.floor(lo[axis])) + 1, 0 if lo[axis] < 0 else 1)
            p1 = min(int(np.ceil(hi[axis])) - 1, int(upper[axis]) if hi[axis] > upper[axis] else int(upper[axis]) - 1)
            p0, p1 = max(p0, int(c_lo[axis])), min(p1, int(c_hi[axis]) + 1)  # within the region's nodes
            if p1 < p0:
                continue
            sl = [slice(1, -1)] * 3
            sl[dim] = slice(p0 - first[axis] - 1, p1 - first[axis] + 2)
            d2 = np.abs(np.diff(f[tuple(sl)], n=2, axis=dim))
            kink = max(kink, float(d2.max()) if d2.size else 0.0)
        return Bends(cross, c_lo, max(kink, float(cross.max(initial=0.0))))


@dataclass(frozen=True, eq=False)
class Bends:
    """How a dose grid's trilinear field departs from linear over a region (from ``DoseGrid.bends``).

    Along each grid axis the field is piecewise linear, bending on the planes of voxel centres by the
    second difference of the values there; inside a cell it is linear plus cross terms (xy, xz, yz and
    xyz), bounded by the largest cross difference of the values on the cell's faces (``cross``, Gy per
    grid step squared). ``largest`` is the largest bend or cross term over the region: 0 (to rounding)
    when the dose is linear there."""

    cross: np.ndarray  # [k, j, i] over the region's cells
    first_cell: np.ndarray  # (i, j, k) index of the region's first cell
    largest: float

    @property
    def linear(self) -> bool:
        return self.largest <= LINEAR_GY

    def cross_at(self, ijk: np.ndarray) -> np.ndarray:
        """The cross-term bound of the cell holding each of the points ``ijk`` ((n, 3) fractional indices)."""
        cell = np.floor(ijk).astype(np.int64) - self.first_cell
        cell = np.clip(cell, 0, np.array(self.cross.shape[::-1]) - 1)
        return self.cross[cell[:, 2], cell[:, 1], cell[:, 0]]


#: Bends below this (Gy) are rounding: the dose is linear.
LINEAR_GY = 1e-9
